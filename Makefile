# Two commands on a fresh machine with Python 3.11: `make repro` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands call `python`: the venv's must come first on PATH.
RUN := PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2

.PHONY: setup repro plots test test-fast bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

repro: setup
	$(RUN) $(BIN)/dvc repro

# dvc_plots/index.html, offline: .dvc/config points `dvc plots show` at plots_template/offline.html.
plots: setup
	$(RUN) $(BIN)/dvc plots show

# Everything (what CI runs), its 15 slowest tests listed at the end: two pytest-xdist workers, each
# taking whole test files (module fixtures built once) in tests/conftest.py's order, longest first.
test: setup
	$(RUN) $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The in-process tests only (pytest's `fast` marker): no stage subprocess, no dvc run; two
# pytest-xdist workers, test by test (a module fixture here takes a second: each worker builds its own).
test-fast: setup
	$(RUN) $(BIN)/python -m pytest -m fast -n 2 --dist load

# Every bench script, each to the end (docs/benchmarks.md); `make bench BENCH_ARGS=--smoke`: tiny sizes, minutes.
BENCH_ARGS ?=
bench: setup
	for b in bench/*.py; do echo "== $$b"; $(RUN) $(BIN)/python $$b $(BENCH_ARGS) || exit 1; done

clean-venv:
	rm -rf $(VENV)
