# rlcomp: `make book` builds the site, `make test` runs the tests. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= full
CHAPTERS := $(basename $(notdir $(wildcard notebooks/[0-9][0-9]-*.py)))
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: venv book chapters site test test-perturbed test-fast lint checkpoints baseline browser clean verdicts-check

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## book: run every chapter with papermill (PROFILE=full|smoke), then build the static site
book: chapters site
	@echo "The book is at $(CURDIR)/book/_build/html/index.html"

chapters: $(STAMP)
	@for ch in $(CHAPTERS); do \
	  echo "== $$ch ($(PROFILE))"; \
	  $(BIN)/python -m rlcomp.chapters run $$ch --profile $(PROFILE) --out book/$$ch.ipynb || exit 1; \
	done

site: $(STAMP)
	$(BIN)/jupyter-book build book/ -W -n --keep-going

## test: the whole suite (unit, learning, determinism, notebook regression, the site in a browser)
## (--nbval-lax also collects tests/baselines/*.ipynb: cells marked # NBVAL_CHECK_OUTPUT must match)
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env

## test-perturbed: the CPU-portable checks with another CPU vendor simulated (1e-9 relative noise
## on HalfCheetah's observations, inherited by papermill kernels and sweep workers); must pass too.
## Perturbed HalfCheetah jobs get their own store keys, so a warm store is never reused for them.
test-perturbed: $(STAMP)
	RLCOMP_PERTURB_OBS=1e-9 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax \
	  --nbval-current-env tests/baselines/ tests/test_portable_regression.py

## verdicts-check: rerun every chapter's sweep (PROFILE=full|smoke) into an empty store and print
## the verdict table diffed against book/data/verdicts.csv; exit 1 if any verdict changed. Also run
## it with RLCOMP_PERTURB_OBS=1e-9 (another CPU simulated): no verdict may change either.
verdicts-check: $(STAMP)
	$(BIN)/python -m rlcomp.verdicts_check --profile $(PROFILE)

## browser: Debian's chromium and chromedriver for the site test (installed when missing)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null || \
	  { $$SUDO apt-get update >/dev/null && \
	    $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; }; }

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## lint: ruff, then the layer contract of DESIGN.md (import-linter, [tool.importlinter] in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check rlcomp tests benchmarks notebooks
	$(BIN)/lint-imports

## checkpoints: retrain the committed agents with the recorded settings (long: see checkpoints/README.md)
checkpoints: $(STAMP)
	bash checkpoints/make_checkpoints.sh

## baseline: re-execute the smoke setup chapter that the nbval regression test compares against
baseline: $(STAMP)
	$(BIN)/python -m rlcomp.chapters baseline
	@echo "Review the change (git diff tests/baselines/) and commit it with the change that caused it."

clean:
	rm -rf book/_build
