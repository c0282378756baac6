#!/usr/bin/env bash
# The test command behind `make test`: ruff (lint and format), then the unit tests on
# the project's own fixtures and the real-data suite on ../shared/data (required when
# CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLCONFIGDIR="${MPLCONFIGDIR:-$PWD/.venv/.mplconfig}"
export RAY_AUTH_MODE=disabled
export TOKENIZERS_PARALLELISM=false
if [[ "${CI:-}" == "true" ]]; then
  bash scripts/ci-system-deps.sh
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The in-process Ray test runs in its own pytest process: Ray's threads in the parent
# would be copied into every worker that a later in-process local executor forks.
if [[ $# -eq 0 ]]; then
  .venv/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/dedup/test_dedup_ray.py
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/dedup/test_dedup_ray.py
else
  .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
