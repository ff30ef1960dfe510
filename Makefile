# `make demo` and `make test` set up their own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test smoke lint bench compare serve package pins clean iact3 iact3-pins

demo: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -p no:logging -n 2 --dist worksteal

# The smoke test of deploy/smoke.py: the local cloud by default; a real account with ALIBABA_CLOUD_* and
# COPYIMAGE_SMOKE_* set (see the README).
smoke: $(VENV)/.runtime-installed
	$(BIN)/python -m deploy.smoke

# iact3 (PyPI alibabacloud-ros-iact3, its whole closure pinned with hashes in deploy/iact3-requirements.txt, in its
# own virtual environment: it pins old SDKs) runs .iact3.yml against the local cloud; deploy/iact3_launcher.py only
# points its ROS client at the local ROS API. Fails unless iact3's own result file says Success for every test.
# On a real account, run `iact3 test run` itself (README, iact3).
IACT3_VENV := .venv-iact3
iact3: $(VENV)/.runtime-installed $(IACT3_VENV)/.installed
	$(BIN)/python -m deploy.iact3_local --iact3-python $(IACT3_VENV)/bin/python

$(IACT3_VENV)/.installed: deploy/iact3-requirements.txt
	$(PYTHON) -m venv $(IACT3_VENV)
	$(IACT3_VENV)/bin/python -m pip install -q --no-deps --require-hashes -r deploy/iact3-requirements.txt
	touch $@

# Regenerate iact3's pins from deploy/iact3-requirements.in (the registry must be reachable).
iact3-pins: $(VENV)/.dev-installed
	$(BIN)/uv pip compile deploy/iact3-requirements.in --universal --python-version 3.10 --generate-hashes \
		--custom-compile-command "make iact3-pins" -o deploy/iact3-requirements.txt

lint: $(VENV)/.dev-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

bench: $(VENV)/.runtime-installed
	$(BIN)/python bench/long_copy.py --minutes 60

# Every strategy side by side, with the chart (about 20 minutes; add ARGS=--quick for a 2-minute run).
compare: $(VENV)/.dev-installed
	$(BIN)/python -m pip install -q -r bench/requirements.txt
	$(BIN)/python bench/compare.py --chart docs/compare.png --tradeoff --check $(ARGS)

serve: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator serve

# What `s build` produces: the code root with its dependencies in python/ (FC adds /code/python via PYTHONPATH),
# installed from the hashed pins for FC's python3.10 on x86_64 Linux whatever this machine is. The import check
# runs without any site-packages, with Python 3.10 when this machine has it. The packages with compiled parts are
# taken only as wheels: built from source here, they would be built for this machine's Python, not FC's. FC cannot
# write to /code, so the bytecode is compiled here for 3.10 (as s build does); else every cold start compiles it.
# Unchecked-hash bytecode: unpacking the zip may change the sources' times, which would void timestamp checks.
PY310 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python) $(shell command -v python3.10 2>/dev/null))
package:
	rm -rf build/code && mkdir -p build/code
	cp -r function/index.py function/copyimage build/code/
	$(PYTHON) -m pip install -q --no-compile --require-hashes --no-deps \
		--only-binary=cffi,cryptography,aiohttp,charset-normalizer,frozenlist,multidict,propcache,yarl --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--python-version 3.10 --implementation cp --abi cp310 --abi abi3 --abi none \
		-t build/code/python -r function/requirements.txt
	if [ -n "$(PY310)" ]; then \
		$(PY310) -m compileall -q -j 0 --invalidation-mode unchecked-hash build/code > /dev/null && cd build/code && \
		$(PY310) -I -S -c "import sys; sys.path[:0] = ['.', 'python']; import index, fc2, alibabacloud_credentials.client, alibabacloud_tea_openapi.utils_models; print('the package imports on its own under Python', sys.version.split()[0])"; \
	else echo "no Python 3.10 here: the package holds FC's python3.10 wheels, so its bytecode and import check are skipped"; fi
	du -sh build/code

# Regenerate the pins from function/requirements.in (the registry must be reachable).
pins: $(VENV)/.dev-installed
	$(BIN)/uv pip compile function/requirements.in --generate-hashes --python-version 3.10 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make pins" -o function/requirements.txt

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs what the function needs (its exact pins), plus the local cloud's own few packages.
$(VENV)/.runtime-installed: function/requirements.txt emulator/requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install -q --require-hashes -r function/requirements.txt
	$(BIN)/python -m pip install -q -r emulator/requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .venv310 .venv-iact3 .pytest_cache .ruff_cache function/python build
