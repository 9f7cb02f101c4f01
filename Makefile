# Two commands on a fresh machine: `make demo` (main job) and `make test`; timings in README "Quick start".
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test test-slow demo bench findings findings-docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,train,render]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -n 2 -q

test-slow: setup
	$(PY) -m pytest -n 2 -q -m slow

bench: setup
	$(PY) benchmarks/bench_solvers.py
	$(PY) benchmarks/bench_env.py

# Figures into results/findings (gitignored); findings-docs regenerates the committed docs/findings/.
findings: setup
	$(PY) -m experiments.findings -o results/findings

findings-docs: setup
	$(PY) -m experiments.findings -o docs/findings

demo: setup
	$(PY) -m agents.demo

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
