# Two commands set everything up on a fresh machine (Python >= 3.11):
#   make nightly   install, then run the nightly job on the embedded simulated data
#   make test      install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

.PHONY: install nightly test serve bench synth
install: $(STAMP)

nightly: $(STAMP)
	$(BIN)/fraud train

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

serve: $(STAMP)
	$(BIN)/fraud serve

synth: $(STAMP)
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(BIN)/python -m infra.app

bench: $(STAMP)
	$(BIN)/python bench/objective_overhead.py --json bench/results/objective_overhead_cpu.json
	$(BIN)/python bench/features.py --json bench/results/features_cpu.json
	$(BIN)/python bench/scoring.py --json bench/results/scoring_cpu.json
	$(BIN)/python bench/nightly.py --json bench/results/nightly_cpu.json
