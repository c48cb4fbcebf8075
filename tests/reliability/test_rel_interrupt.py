"""SIGINT (Ctrl-C) and SIGTERM (a CI runner stopping the job) at five points of configure_with_jit.yml
with jit_guard: see interrupts.py."""

import signal

import pytest
from interrupts import POINTS, check, interrupt

ARMSIM_SEED = "reliability.yaml"
ARMSIM_OPTIONS = {"apply_delay": 0.5}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt(armsim, tmp_path, signum, point, ledger):
    observed = interrupt(armsim, tmp_path, point, signum)
    ledger.add(cases=1, interrupts=1, orphans=len(observed["left"]))
    check(observed, point, signum)
