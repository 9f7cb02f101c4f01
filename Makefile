# Two commands on a fresh machine: `make demo` (main job) and `make test`; timings in docs/getting-started.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test test-slow test-rllib lint demo bench findings findings-docs leaderboard docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,train,render,multiagent,traces,bench,docs]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -n 2 -q

# ruff (lint rules and formatting) and mypy, configured in pyproject.toml; `ruff check --fix` and `ruff format`
# repair most findings.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# torchrl (the slow test that wraps every id with torchrl's GymEnv) is installed for test-slow only.
TORCHRL_STAMP := $(VENV)/.torchrl-stamp

$(TORCHRL_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[torchrl]"
	touch $(TORCHRL_STAMP)

test-slow: setup $(TORCHRL_STAMP)
	$(PY) -m pytest -n 2 -q -m slow
	$(MAKE) test-rllib

# Ray RLlib pins gymnasium==1.2.2, so its tests run in a venv of their own; it also gets the training and
# leaderboard extras, so that the leaderboard's jobs run as Ray tasks on the two-node cluster of tests/ray_cluster.py.
RLLIB_VENV ?= .venv-rllib
RLLIB_PY := $(RLLIB_VENV)/bin/python
RLLIB_STAMP := $(RLLIB_VENV)/.installed-stamp

$(RLLIB_STAMP): pyproject.toml constraints.txt
	test -x $(RLLIB_PY) || $(PYTHON) -m venv $(RLLIB_VENV)
	$(RLLIB_PY) -m pip install --quiet --upgrade pip
	$(RLLIB_PY) -m pip install --quiet -c constraints.txt -e ".[dev,rllib,multiagent,train,bench]"
	touch $(RLLIB_STAMP)

test-rllib: $(RLLIB_STAMP)
	$(RLLIB_PY) -m pytest -q -o addopts="" tests/test_rllib.py tests/test_multiagent.py tests/test_sweep.py \
		tests/test_ray_cluster.py

bench: setup
	$(PY) benchmarks/bench_solvers.py
	$(PY) benchmarks/bench_env.py

# Figures into results/findings (gitignored); findings-docs regenerates the committed docs/findings/.
findings: setup
	$(PY) -m experiments.findings -o results/findings

findings-docs: setup
	$(PY) -m experiments.findings -o docs/findings
	$(PY) -m experiments.findings -o docs/findings/mixture --figures 5 --acceptance-process mixture

demo: setup
	$(PY) -m agents.demo

# Every analytic controller and every saved agent under runs/leaderboard on every suite task (docs/leaderboard.md);
# LEADERBOARD_ARGS=--train --timesteps N trains the missing runs first.
JOBS ?= 2
leaderboard: setup
	$(PY) -m agents.leaderboard --runs runs/leaderboard -o results/leaderboard --jobs $(JOBS) $(LEADERBOARD_ARGS)

# The documentation site (mkdocs.yml) into site/, strictly: any warning (a broken internal link, a missing page,
# a docstring mkdocstrings cannot read) fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(PY) -m mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) $(RLLIB_VENV) results site .pytest_cache .hypothesis .mypy_cache .ruff_cache
