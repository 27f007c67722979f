# Two commands on a fresh machine with Python 3.11: `make repro` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands call `python`: the venv's must come first on PATH.
RUN := PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2

.PHONY: setup repro plots test bench clean-venv

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

test: setup
	$(RUN) $(BIN)/python -m pytest

bench: setup
	for b in bench/*.py; do $(RUN) $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
