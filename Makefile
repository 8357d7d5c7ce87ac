# The two commands README.md opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The shared tiny Shakespeare corpus of this project's machines, when it is there.
export LM_KERAS_DATA_DIR ?= $(if $(wildcard ../shared/data/tinyshakespeare.txt),$(abspath ../shared/data),)

$(VENV)/.runtime: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

.PHONY: demo test notebooks
demo: $(VENV)/.runtime
	$(PY) -m lm_keras.demo

test: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# Re-run the notebooks at full size from fresh training runs, keeping their outputs in the
# committed files (about 45 minutes on 2 CPU cores).
notebooks: $(VENV)/.dev
	rm -rf runs/notebooks/full
	$(VENV)/bin/jupyter-execute --inplace --timeout=3600 notebooks/*.ipynb
