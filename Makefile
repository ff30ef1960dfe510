# `make demo` and `make test` set up their own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench serve footprint clean

demo: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest -q -p no:logging

lint: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .

bench: $(VENV)/.runtime-installed
	$(BIN)/python bench/long_copy.py --minutes 60

serve: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator serve

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs only what the function needs, plus PyYAML to read template.yml.
$(VENV)/.runtime-installed: function/requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -r function/requirements.txt 'PyYAML>=6,<7'
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt function/requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache function/python
