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

.PHONY: demo test
demo: $(VENV)/.runtime
	$(PY) -m lm_keras.demo

test: $(VENV)/.dev
	$(PY) -m pytest
