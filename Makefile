# Two commands set everything up on a fresh machine (Python >= 3.11):
#   make nightly   install [train,tracking], then run the nightly job on the embedded simulated data
#   make test      install [dev], then run the test suite
# Each target installs the extras it needs (pyproject.toml) into one .venv, once per
# change of pyproject.toml: a stamp file per set of extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# $(VENV)/.installed-train, -dev, -train,api, ...: `pip install -e ".[<extras>]"`
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	touch $@

.PHONY: install nightly test serve bench synth
install: $(VENV)/.installed-dev

nightly: $(VENV)/.installed-train,tracking
	$(BIN)/fraud train

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --durations=15

serve: $(VENV)/.installed-train,api
	$(BIN)/fraud serve

synth: $(VENV)/.installed-infra
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(BIN)/python -m infra.app

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/objective_overhead.py --json bench/results/objective_overhead_cpu.json
	$(BIN)/python bench/features.py --json bench/results/features_cpu.json
	$(BIN)/python bench/scoring.py --json bench/results/scoring_cpu.json
	$(BIN)/python bench/nightly.py --json bench/results/nightly_cpu.json
	$(BIN)/python bench/cold_start.py --json bench/results/cold_start.json
