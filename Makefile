# `make demo` and `make test` each work on a fresh clone: they build .venv inside the checkout.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench learn clean

# The engines' own code for the adapter tests (tests/test_engine_code.py): openrlhf and verl without their GPU
# dependencies, plus only what their argument parsing, config (Hydra), reward loaders and reward managers import.
# Exact pins: none of them changes a package .all installed (checked with pip install --dry-run).
ENGINE_DEPS := hydra-core==1.3.8 omegaconf==2.3.1 codetiming==1.4.0 aiohttp==3.14.5 pylatexenc==2.11 ray==2.55.0
ENGINE_NODEPS := openrlhf==0.11.2 verl==0.9.1 tensordict==0.10.0 pyvers==0.1.0 orjson==3.13.0

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# torch first, pinned to the CPU build on disk: a bare `torch` requirement would pull a CUDA build of several GB.
$(VENV)/.all: $(VENV)/.core
	$(PIP) torch==2.13.0
	$(PIP) -e ".[all,dev]"
	$(PIP) --no-deps lmms-eval==0.7.3  # its modules needed for task loading are in the lmms-eval extra
	touch $@

$(VENV)/.engines: $(VENV)/.all
	$(PIP) $(ENGINE_DEPS)
	$(PIP) --no-deps $(ENGINE_NODEPS)
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/medground-eval demo

# Lint first (ruff, configured in pyproject.toml: a lint error fails the run), then the suite, which runs the
# docstring examples of the core and the rewards too (tests/test_doctests.py).
# MEDGROUND_REQUIRE_ENGINES: a missing engine fails its tests instead of skipping them (tests/engine_code.py).
test: $(VENV)/.engines
	$(VENV)/bin/ruff check .
	MEDGROUND_REQUIRE_ENGINES=1 $(PY) -m pytest -q -n 2

# synth -> tiny model -> SFT -> GRPO -> held-out table (docs/training.md); CPU, one torch thread, about 20 minutes.
learn: $(VENV)/.all
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m medground_eval.training.learn --output runs/learn

bench: $(VENV)/.all
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
