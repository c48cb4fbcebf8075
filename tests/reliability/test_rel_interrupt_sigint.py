"""SIGINT (Ctrl-C) at five points of configure_with_jit.yml with jit_guard: see interrupts.py."""

import signal

import pytest
from interrupts import POINTS, check, interrupt

ARMSIM_SEED = "reliability.yaml"
ARMSIM_OPTIONS = {"apply_delay": 0.5}


@pytest.mark.parametrize("point", POINTS)
def test_sigint(armsim, tmp_path, point, ledger):
    observed = interrupt(armsim, tmp_path, point, signal.SIGINT)
    ledger.add(cases=1, interrupts=1, orphans=len(observed["left"]))
    check(observed, point, signal.SIGINT)
