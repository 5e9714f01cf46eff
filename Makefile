# spatial_ros — set-up, test and demo on a plain machine (no ROS install needed).
#
#   make demo        the main job, fully offline, with the embedded default model
#   make test        the test suite CI runs (fast; slow/GPU tests are skipped)
#   make test-slow   the slow tests (long simulations, training smoke runs at full size)
#   make test-gpu    tests that need CUDA (run on a GPU machine)
#   make test-vllm   opt-in: vLLM serves the default model in .venv-vllm (same boxes as local)
#   make bench       all benchmarks (spatial-ros bench ...)
#
# Every target sets up what it needs: .venv, pinned deps (torch first), the ROS 2 Kilted wheels,
# and a colcon build of msg/ + srv/ into build/install. Re-running is fast: each step is
# skipped while its inputs are unchanged.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
STAMPS := $(VENV)/.stamps
ENV_SH := build/env.sh
PYTEST_ARGS ?=
# Paths baked into the ROS wheels' CMake exports (BRIEF §5); they must exist for colcon build.
WHEEL_PY_INCLUDE := /opt/python/cp311-cp311/include/python3.11
WHEEL_NUMPY_INCLUDE := /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include

.PHONY: help setup demo test test-slow test-gpu test-vllm bench lint clean distclean

help:
	@echo "make demo | make test | make test-slow | make test-gpu | make bench | make clean"

setup: $(ENV_SH)

# --- 1. virtual environment + pinned Python dependencies --------------------------------------
$(STAMPS)/python: requirements/torch.txt requirements/core.txt requirements/ros.txt setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { \
	  echo "ERROR: the ROS 2 Kilted wheels need CPython 3.11; '$(PYTHON)' is $$($(PYTHON) -V)." \
	       "Run: make PYTHON=/path/to/python3.11 $(MAKECMDGOALS)"; exit 1; }
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch FIRST and alone: a looser spec (or a package that pulls torch) downloads CUDA wheels.
	$(PIP) install -q -r requirements/torch.txt
	$(PIP) install -q -r requirements/core.txt -r requirements/ros.txt
	$(PIP) install -q --no-deps -e .
	@mkdir -p $(STAMPS) && touch $@

# --- 2. system bits: libusb for open3d, the include paths the ROS wheels expect ----------------
$(STAMPS)/system: $(STAMPS)/python
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0; \
	  else \
	    echo "ERROR: open3d needs libusb-1.0.so.0. Run: sudo apt-get install libusb-1.0-0"; exit 1; \
	  fi; fi
	@pyinc=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	npinc=$$($(VPY) -c 'import numpy; print(numpy.get_include())'); \
	for pair in "$(WHEEL_PY_INCLUDE)=$$pyinc" "$(WHEEL_NUMPY_INCLUDE)=$$npinc"; do \
	  link=$${pair%%=*}; target=$${pair#*=}; \
	  if [ "$$(readlink -f $$link 2>/dev/null)" != "$$(readlink -f $$target)" ]; then \
	    if mkdir -p "$$(dirname $$link)" 2>/dev/null && ln -sfn "$$target" "$$link" 2>/dev/null; then \
	      echo "linked $$link -> $$target"; \
	    else \
	      echo "ERROR: the ROS 2 wheels' CMake files expect $$link to exist, and it cannot be created"; \
	      echo "without root. Run once:"; \
	      echo "  sudo mkdir -p $$(dirname $$link) && sudo ln -sfn $$target $$link"; \
	      exit 1; \
	    fi; \
	  fi; \
	done
	@touch $@

# --- 3. colcon build of msg/ + srv/ inside the venv ---------------------------------------------
# tf2_msgs has no PyPI wheel: a TFMessage-only stand-in (scripts/offrobot_tf2_msgs) is built
# next to ours, staged outside the repo's colcon search path (scripts/ has COLCON_IGNORE).
INTERFACES := $(wildcard msg/*.msg srv/*.srv scripts/offrobot_tf2_msgs/*/*) CMakeLists.txt package.xml
$(STAMPS)/interfaces: $(STAMPS)/system $(INTERFACES)
	@echo "colcon build (interfaces) ..."
	rm -rf build/ros_deps && mkdir -p build/ros_deps && cp -r scripts/offrobot_tf2_msgs build/ros_deps/tf2_msgs
	source $(VENV)/bin/activate && \
	export AMENT_PREFIX_PATH=$$VIRTUAL_ENV CMAKE_PREFIX_PATH=$$VIRTUAL_ENV && \
	colcon --log-base build/colcon-log build --base-paths . build/ros_deps --merge-install \
	  --build-base build/colcon --install-base build/install \
	  --event-handlers console_direct- summary- \
	  --cmake-args -DSPATIAL_ROS_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
	    -DPython3_EXECUTABLE=$$VIRTUAL_ENV/bin/python \
	    -DPython3_NumPy_INCLUDE_DIR=$(WHEEL_NUMPY_INCLUDE) \
	  > build/colcon.log 2>&1 || { tail -40 build/colcon.log; \
	    echo "ERROR: colcon build failed; full log in build/colcon.log"; exit 1; }
	@touch $@

# --- 4. environment script the other targets source ---------------------------------------------
$(ENV_SH): $(STAMPS)/interfaces scripts/write_env.sh
	@bash scripts/write_env.sh "$(CURDIR)" > $@.tmp && mv $@.tmp $@
	@source $@ && python -c 'import spatial_ros.msg, spatial_ros.srv, rclpy' || { \
	  echo "ERROR: the built interfaces do not import; see build/colcon.log"; exit 1; }
	@echo "environment ready: source $(ENV_SH)"

# --- user targets ----------------------------------------------------------------------------------
demo: $(ENV_SH)
	source $(ENV_SH) && spatial-ros demo

test: $(ENV_SH)
	source $(ENV_SH) && python -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: $(ENV_SH)
	source $(ENV_SH) && python -m pytest -m "slow" $(PYTEST_ARGS)

test-gpu: $(ENV_SH)
	source $(ENV_SH) && python -m pytest -m "gpu" $(PYTEST_ARGS)

# Opt-in: vLLM (CPU build) in its OWN environment serves the default model; the served backend
# must give the transformers backend's boxes. Builds $(VLLM_VENV) once (about 3.5 GB download).
VLLM_VENV ?= .venv-vllm
test-vllm: $(ENV_SH)
	bash scripts/vllm_env.sh $(VLLM_VENV)
	source $(ENV_SH) && SPATIAL_ROS_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python \
	  python -m pytest -m vllm -s test/test_vllm_served.py $(PYTEST_ARGS)

bench: $(ENV_SH)
	source $(ENV_SH) && spatial-ros bench all

lint: $(ENV_SH)
	source $(ENV_SH) && python -m ruff check spatial_ros training test

clean:
	rm -rf build log install .pytest_cache

distclean: clean
	rm -rf $(VENV)
