# jitaccess.azure — developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The compat environment: azure.azcollection 3.12.0 (from the ansible package) with its exact SDK
# pins, and this collection beside it (tests/compat/requirements.txt).
COMPAT_VENV := .venv-compat
COMPAT_BIN := $(COMPAT_VENV)/bin
COMPAT_TESTS := tests/compat tests/integration/test_jit_policy.py tests/integration/test_jit_request.py \
	tests/integration/test_nsg_jit_facts.py tests/integration/test_jit_guard.py tests/integration/test_roles_fleet.py \
	tests/integration/test_roles_access.py tests/integration/test_e2e_configure.py
BUILD := .build
COLLECTIONS := $(BUILD)/collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := $(BUILD)/dist/jitaccess-azure-$(VERSION).tar.gz
SOURCES := $(shell git ls-files -co --exclude-standard plugins meta roles playbooks galaxy.yml README.md docs changelogs 2>/dev/null)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)
export PYTHONPATH := $(CURDIR)/tools

.PHONY: help venv compat-venv chromium build install lint sanity unit armsim-test integration reliability molecule compat test test-live demo sandbox bench clean

help:
	@echo "make demo   - run the JIT rollout + open/configure/close job against armsim (offline Azure)"
	@echo "make sandbox - armsim with the demo fleet, kept running until Ctrl-C, with an env file to source"
	@echo "make test   - lint, sanity, unit, armsim, integration and molecule suites, then the compat suite"
	@echo "make compat - the module/role/pattern integration tests beside azure.azcollection 3.12.0's SDK pins"
	@echo "make test-live - the live suite against a real subscription (AZURE_*, JITACCESS_LIVE_VMS: docs/live-testing.md)"
	@echo "make bench  - performance run (QUICK=1 for the 100/1,000-VM subset)"

# The venv is rebuilt when a requirements file changes; ranges, not pins (see requirements*.txt).
$(BIN)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

$(COMPAT_BIN)/.installed: tests/compat/requirements.txt tests/compat/constraints-azcollection-3.12.0.txt requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(COMPAT_BIN)/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_BIN)/pip install --quiet --upgrade pip
	cd tests/compat && ../../$(COMPAT_BIN)/pip install --quiet -r requirements.txt
	touch $@

compat-venv: $(COMPAT_BIN)/.installed

# tests/integration/test_report_html.py opens the fleet report page in Debian's Chromium, headless.
# Installed with apt-get where missing (root on Debian/Ubuntu); anywhere else, say how and stop.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  fi; \
	  command -v chromium >/dev/null || { echo "make chromium: chromium is not on PATH and could not be installed: run 'apt-get install -y chromium' as root (tests/integration/test_report_html.py needs it)" >&2; exit 1; }; }

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

integration: install chromium
	$(BIN)/pytest -q tests/integration

reliability: install
	$(BIN)/pytest -q tests/reliability

# Molecule scenarios (extensions/molecule): each starts its own armsim. `make test` runs them too,
# through tests/integration/test_roles_molecule.py.
molecule: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test --all

# The integration tests of the three modules, both roles and the open/configure/close pattern, run
# by the compat environment's ansible-playbook and SDKs, plus the azure.azcollection side by side
# tests (tests/compat). The collection is the same built artifact as in the main run.
compat: install compat-venv
	$(COMPAT_BIN)/pytest -n 2 --dist loadfile $(COMPAT_TESTS)

# Everything, ending with one pytest run whose summary line is the last thing printed.
test: lint sanity install chromium
	$(MAKE) --no-print-directory bench QUICK=1
	$(MAKE) --no-print-directory compat
	$(BIN)/pytest -n 2 --dist loadfile tests/unit tools/armsim/tests tests/integration tests/reliability

# The live suite against whatever AZURE_* names (a real subscription, or armsim in CI through the
# same variables): docs/live-testing.md. It refuses to run without the VMs it may touch.
test-live: venv
	@test -n "$$JITACCESS_LIVE_VMS" || { echo "test-live: set JITACCESS_LIVE_VMS and the AZURE_* credentials (docs/live-testing.md)" >&2; exit 2; }
	@test -f $(COLLECTIONS)/ansible_collections/jitaccess/azure/MANIFEST.json || $(MAKE) install
	$(BIN)/pytest -q -p no:cacheprovider tests/live

# armsim with the demo fleet until Ctrl-C: source the env file it prints and try the collection.
sandbox: install
	demo/sandbox.sh

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
