# `make demo` and `make test` set up their own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test smoke lint bench compare serve package pins clean iact3 iact3-pins

# The demo, the smoke and the suite run the code package `make package` builds (installed by deploy/provider.yml),
# rebuilt when the function's sources or pins are newer than it.
PACKAGE := build/package-python3.10.json
PACKAGE_INPUTS := function/index.py $(wildcard function/copyimage/*.py) $(wildcard function/requirements*.txt)

demo: $(VENV)/.runtime-installed $(PACKAGE)
	$(BIN)/python -m deploy.demo

test: $(VENV)/.dev-installed $(PACKAGE)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -p no:logging -n 2 --dist worksteal

# The smoke test of deploy/smoke.py: the local cloud by default; a real account with ALIBABA_CLOUD_* and
# COPYIMAGE_SMOKE_* set (see the README).
smoke: $(VENV)/.runtime-installed $(PACKAGE)
	$(BIN)/python -m deploy.smoke

$(PACKAGE): $(PACKAGE_INPUTS)
	$(MAKE) package PYTHON_RUNTIME=python3.10

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
	$(BIN)/python -m bench.long_copy --minutes 60

# Every strategy side by side, with the chart (about 20 minutes; add ARGS=--quick for a 2-minute run).
compare: $(VENV)/.dev-installed
	$(BIN)/python -m pip install -q -r bench/requirements.txt
	$(BIN)/python -m bench.compare --chart docs/compare.png --tradeoff --check $(ARGS)

serve: $(VENV)/.runtime-installed
	$(BIN)/python -m emulator serve

# What `s build` produces, and the zip deploy/provider.yml installs (build/ros-copy-image-<runtime>-<hash>.zip, named
# in build/package-<runtime>.json; upload it to OSS and create the stack, see the README): the code root with its dependencies in python/ (FC adds /code/python via PYTHONPATH),
# installed from the hashed pins for the FC runtime PYTHON_RUNTIME (python3.10, the default, or python3.12) on x86_64
# Linux whatever this machine is. The packages with compiled parts are taken only as wheels: built from source here,
# they would be built for this machine's Python, not FC's. FC cannot write to /code, so the bytecode is compiled here
# for the runtime's Python (as s build does); else every cold start compiles it. Unchecked-hash bytecode: unpacking
# the zip may change the sources' times, which would void timestamp checks. The bytecode names its sources as FC
# sees them (/code/...), so the zip's hash does not depend on where it was built. The import check runs with the runtime's
# Python when this machine has it, isolated (-I -S: no site-packages, no PYTHONPATH), with only the package on the
# path, and fails if any module it loads comes from anywhere but the package or the standard library: the package
# never leans on an SDK of the runtime's own (FC's python3.12 ships some) instead of its pins.
PYTHON_RUNTIME ?= python3.10
RUNTIME_VERSION := $(patsubst python%,%,$(PYTHON_RUNTIME))
RUNTIME_ABI := cp$(subst .,,$(RUNTIME_VERSION))
# The pins for each runtime: function/requirements.txt (python3.10), function/requirements-py312.txt (python3.12).
PINS := $(if $(filter python3.10,$(PYTHON_RUNTIME)),function/requirements.txt,function/requirements-py$(subst .,,$(RUNTIME_VERSION)).txt)
RUNTIME_PY := $(firstword $(wildcard $(HOME)/.pyenv/versions/$(RUNTIME_VERSION).*/bin/python) $(shell command -v python$(RUNTIME_VERSION) 2>/dev/null))
IMPORT_CHECK := import sys, sysconfig; sys.path[:0] = ['.', 'python']; \
	import index, fc2, alibabacloud_credentials.client, alibabacloud_tea_openapi.utils_models, alibabacloud_ecs20140526.client; \
	import os; here = os.getcwd(); std = sysconfig.get_paths()['stdlib']; \
	out = sorted(n for n, m in list(sys.modules.items()) if getattr(m, '__file__', None) and not os.path.abspath(m.__file__).startswith((here, std))); \
	assert not out, f'imported from outside the package: {out}'; \
	print('the package imports on its own under Python', sys.version.split()[0], 'with', len(sys.modules), 'modules, none from outside it')
package:
	@case "$(PYTHON_RUNTIME)" in python3.10|python3.12) ;; *) echo "PYTHON_RUNTIME must be python3.10 or python3.12"; exit 2;; esac
	rm -rf build/code && mkdir -p build/code
	cp -r function/index.py function/copyimage build/code/
	rm -rf build/code/copyimage/__pycache__  # the working tree's own bytecode (this machine's Python) stays out
	$(PYTHON) -m pip install -q --no-compile --require-hashes --no-deps \
		--only-binary=cffi,cryptography,aiohttp,charset-normalizer,frozenlist,multidict,propcache,yarl --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--python-version $(RUNTIME_VERSION) --implementation cp --abi $(RUNTIME_ABI) --abi abi3 --abi none \
		-t build/code/python -r $(PINS)
	if [ -n "$(RUNTIME_PY)" ]; then \
		$(RUNTIME_PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash -s build/code -p /code build/code > /dev/null && cd build/code && \
		$(RUNTIME_PY) -I -S -c "$(IMPORT_CHECK)"; \
	else echo "no Python $(RUNTIME_VERSION) here: the package holds FC's $(PYTHON_RUNTIME) wheels, so its bytecode and import check are skipped"; fi
	du -sh build/code
	$(PYTHON) -m deploy.package zip --code build/code --runtime $(PYTHON_RUNTIME)

# Regenerate the pins from function/requirements.in for both runtimes (the registry must be reachable).
pins: $(VENV)/.dev-installed
	$(BIN)/uv pip compile function/requirements.in --generate-hashes --python-version 3.10 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make pins" -o function/requirements.txt
	$(BIN)/uv pip compile function/requirements.in --generate-hashes --python-version 3.12 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make pins" -o function/requirements-py312.txt

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
	rm -rf $(VENV) .venv310 .venv312 .venv-iact3 .pytest_cache .ruff_cache function/python build
