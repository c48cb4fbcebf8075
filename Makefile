# jitaccess.azure — developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BUILD := .build
COLLECTIONS := $(BUILD)/collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/dist/jitaccess-azure-$(VERSION).tar.gz
SOURCES := $(shell git ls-files -co --exclude-standard plugins meta roles playbooks galaxy.yml README.md docs changelogs 2>/dev/null)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)
export PYTHONPATH := $(CURDIR)/tools

.PHONY: help venv build install lint sanity unit armsim-test integration reliability molecule test demo bench clean

help:
	@echo "make demo   - run the JIT rollout + open/configure/close job against armsim (offline Azure)"
	@echo "make test   - lint, sanity, unit, armsim, integration and molecule suites"
	@echo "make bench  - performance run (QUICK=1 for the 100/1,000-VM subset)"

# The venv is rebuilt when a requirements file changes; ranges, not pins (see requirements*.txt).
$(BIN)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

$(TARBALL): $(BIN)/.installed $(SOURCES)
	mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist .

build: $(TARBALL)

$(COLLECTIONS)/ansible_collections/jitaccess/azure/MANIFEST.json: $(TARBALL)
	$(BIN)/ansible-galaxy collection install --force --offline -p $(COLLECTIONS) $(TARBALL)

install: $(COLLECTIONS)/ansible_collections/jitaccess/azure/MANIFEST.json

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production roles playbooks extensions
	$(BIN)/antsibull-changelog lint
	tools/dev/check_fragments.sh

sanity: venv
	tools/dev/sanity.sh

unit: venv
	$(BIN)/pytest -q tests/unit

armsim-test: venv
	$(BIN)/pytest -q tools/armsim/tests

integration: install
	$(BIN)/pytest -q tests/integration

reliability: install
	$(BIN)/pytest -q tests/reliability

# Molecule scenarios (extensions/molecule): each starts its own armsim. `make test` runs them too,
# through tests/integration/test_roles_molecule.py.
molecule: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test --all

# Everything, ending with one pytest run whose summary line is the last thing printed.
test: lint sanity install
	$(MAKE) --no-print-directory bench QUICK=1
	$(BIN)/pytest -n 2 --dist loadfile tests/unit tools/armsim/tests tests/integration tests/reliability

demo: install
	demo/run.sh

# Performance: the collection against the naive per-VM loop on armsim fleets (docs/bench.md).
# Full run: 100/1,000/10,000 VMs, writes bench/results.json + results.png. QUICK=1: 100/1,000 VMs
# and 10/100 hosts, writes .build/bench/results-quick.*; both exit non-zero on a missed target.
QUICK ?=
bench: install
	$(BIN)/python bench/run.py $(if $(filter-out 0 no false,$(QUICK)),--quick)

clean:
	rm -rf $(BUILD) tests/output
