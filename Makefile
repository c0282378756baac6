# shikomi: one target per stage. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHIKOMI := $(VENV)/bin/shikomi
CONFIG ?= configs/demo.yaml
ARGS ?=
export MPLCONFIGDIR ?= $(CURDIR)/.venv/.mplconfig
export RAY_AUTH_MODE ?= disabled
export TOKENIZERS_PARALLELISM ?= false

STAGES := extract langid dedup clean mix train-tokenizer tokenize train report

.PHONY: setup demo test readme test-unit test-realdata bench run submit status clean-runs $(STAGES)

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -U pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

demo: setup
	$(SHIKOMI) run --config configs/demo.yaml $(ARGS)

test: setup
	bash scripts/test.sh

# rewrite the command outputs shown in README.md and docs/ from a demo run (tests/test_readme.py checks them)
readme: setup
	.venv/bin/python tests/test_readme.py --write runs/readme

bench: setup
	$(PY) -m bench $(ARGS)

run: setup
	$(SHIKOMI) run --config $(CONFIG) $(ARGS)

submit: setup
	$(SHIKOMI) submit --config $(CONFIG) $(ARGS)

$(STAGES): setup
	$(SHIKOMI) $@ --config $(CONFIG) $(ARGS)

clean-runs:
	rm -rf runs

# the shipped quality model (shikomi/filters/models/quality_ja.ftz) and its card, from ../shared/data
QUALITY_DATA ?= ../shared/data
.PHONY: quality-model
quality-model: setup
	$(PY) -m shikomi.filters.quality_model --data $(QUALITY_DATA) --cv
