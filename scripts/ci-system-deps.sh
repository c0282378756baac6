#!/usr/bin/env bash
# System packages some tests need (Slurm + munge for the cluster tests, Chromium
# for the report rendering test). Installed only where we are root with apt-get.
set -uo pipefail
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null; then
  echo "ci-system-deps: not root or no apt-get; cluster and browser tests will skip" >&2
  exit 0
fi
need=()
command -v slurmctld >/dev/null || need+=(slurmctld slurmd slurm-client munge)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "ci-system-deps: installing ${need[*]}"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "ci-system-deps: apt-get install failed" >&2
fi
