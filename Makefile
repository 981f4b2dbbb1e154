# `make demo` and `make test` each work on a fresh clone: they build .venv inside the checkout.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench learn clean

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

demo: $(VENV)/.core
	$(VENV)/bin/medground-eval demo

test: $(VENV)/.all
	$(PY) -m pytest -q -n 2

# synth -> tiny model -> SFT -> GRPO -> held-out table (docs/training.md); CPU, one torch thread, about 20 minutes.
learn: $(VENV)/.all
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m medground_eval.training.learn --output runs/learn

bench: $(VENV)/.all
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
