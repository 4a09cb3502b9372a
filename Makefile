# Two entry points for a fresh machine:
#   make reproduce   set up .venv if needed, then run `ottokit reproduce --preset quick`
#   make test        set up .venv (with dev tools) if needed, then run the fast test suite
#   make docs        build the documentation site into site/ (mkdocs, strict)
#   make docs-figures RUN=<dir>  copy the figures the docs show from a run or reproduce directory
#   make mutate      mutation-test the mathematical core (hours for all of it; not in `make test`)
#                    MODULES="graph flowmatch" to pick modules, MUTANTS='ottokit.graph._calculus.*'
#                    to pick mutants; the report is .mutmut/report.md
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= quick

.PHONY: setup reproduce test lint bench docs docs-figures mutate clean

$(VENV)/.ottokit-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first, so that the generic dependency does not pull a CUDA build
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.ottokit-installed

reproduce: setup
	$(VENV)/bin/ottokit reproduce --preset $(PRESET)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

docs: setup
	$(VENV)/bin/mkdocs build --strict

docs-figures: setup
	@test -n "$(RUN)" || { echo "usage: make docs-figures RUN=<a reproduce or run directory>"; exit 2; }
	$(PY) docs/figures.py "$(RUN)"

MODULES ?=
MUTANTS ?=
mutate: setup
	$(PY) tools/mutate.py $(MODULES) $(if $(MUTANTS),--mutants '$(MUTANTS)')

bench: setup
	$(PY) benchmarks/graph_flows.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site .mutmut mutants
