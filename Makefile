# `make demo` and `make test` set up their own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench serve package clean

demo: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -p no:logging -n 2 --dist worksteal

lint: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

bench: $(VENV)/.runtime-installed
	$(BIN)/python bench/long_copy.py --minutes 60

serve: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator serve

# What `s build` produces: the code root with its dependencies in python/ (FC adds /code/python via PYTHONPATH).
# The import check runs without any site-packages, as the FC runtime would see the package.
package:
	rm -rf build/code && mkdir -p build/code
	cp -r function/index.py function/copyimage build/code/
	$(PYTHON) -m pip install -q --no-compile -t build/code/python -r function/requirements.txt
	cd build/code && $(PYTHON) -I -S -c "import sys; sys.path[:0] = ['.', 'python']; import index, fc2, alibabacloud_fc20230330.client, alibabacloud_credentials.client; print('the package imports on its own; handler', index.handler.__module__ + '.handle')"
	du -sh build/code

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
	rm -rf $(VENV) .venv310 .pytest_cache .ruff_cache function/python build
