"""Reliability and security suite: fixtures and the closing table.

Reuses the integration harness (``tests/integration/harness.py``, ``roles_support.py``): real
``ansible-playbook`` runs of the built and installed collection against armsim over TLS. The two
armsim fixtures are bound here too (harness.armsim_fixtures) so that this directory runs on its
own and beside tests/integration in one pytest (xdist) invocation, with seeds from ``seeds/``.

Each test module sets ``ARMSIM_SEED`` (a dict, or a file under ``seeds/``) and optionally
``ARMSIM_OPTIONS``. Tests add rows to the closing table with the ``ledger`` fixture; the rows are
written as JSON lines to a file shared by the xdist workers and summed up by the controller.
"""

import json
import os
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")
for _path in (INTEGRATION, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness import armsim_fixtures  # noqa: E402

SEEDS = os.path.join(HERE, "seeds")
LEDGER_ENV = "JIT_RELIABILITY_LEDGER"
COUNTERS = (
    ("cases", "cases run"),
    ("faults", "faults survived or failed cleanly"),
    ("interrupts", "interrupts tested"),
    ("bad_inputs", "bad inputs tried"),
    ("rejected_writes", "writes made by rejected inputs (must be 0)"),
    ("entries_lost", "policy entries lost (must be 0)"),
    ("orphans", "allow rules left open by interrupted runs (must be 0)"),
    ("concurrent_rounds", "concurrent rounds"),
)


armsim_server, armsim = armsim_fixtures(SEEDS)


# --- the closing table ---------------------------------------------------------------------------


def pytest_configure(config):
    if not hasattr(config, "workerinput") and not os.environ.get(LEDGER_ENV):
        handle, path = tempfile.mkstemp(prefix="jit-reliability-", suffix=".jsonl")
        os.close(handle)
        os.environ[LEDGER_ENV] = path  # inherited by the xdist workers started after this
        config._jit_reliability_ledger = path


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput[LEDGER_ENV] = os.environ.get(LEDGER_ENV, "")


def _ledger_path(config=None):
    workerinput = getattr(config, "workerinput", None) if config is not None else None
    if workerinput and workerinput.get(LEDGER_ENV):
        return workerinput[LEDGER_ENV]
    return os.environ.get(LEDGER_ENV)


class Ledger:
    def __init__(self, path, test):
        self.path = path
        self.test = test

    def add(self, **counts):
        unknown = set(counts) - {key for key, _label in COUNTERS}
        assert not unknown, unknown
        if not self.path:
            return
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"test": self.test, **counts}) + "\n")


@pytest.fixture
def ledger(request):
    return Ledger(_ledger_path(request.config), request.node.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = getattr(config, "_jit_reliability_ledger", None)
    if not path or not os.path.exists(path):
        return
    totals = {key: 0 for key, _label in COUNTERS}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                for key, value in json.loads(line).items():
                    if key in totals:
                        totals[key] += value
    os.unlink(path)
    if not any(totals.values()):
        return
    terminalreporter.write_sep("=", "jitaccess.azure reliability and security")
    for key, label in COUNTERS:
        terminalreporter.write_line("%-60s %6d" % (label, totals[key]))
