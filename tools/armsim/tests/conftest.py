"""Fixtures for armsim's own tests: one armsim per test session (per xdist worker), reset to the
seed before every test; real SDK clients and a plain HTTPS client aimed at it."""

import copy
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from simtest import SEED, Arm  # noqa: E402

from armsim.testing import ArmSim  # noqa: E402


@pytest.fixture(scope="session")
def sim():
    with ArmSim(copy.deepcopy(SEED), extra_args=("--lro-in-progress", "0.3")) as s:
        yield s


@pytest.fixture(autouse=True)
def _fresh(request):
    """Every test starts from the seed with default settings."""
    if "sim" in request.fixturenames:
        s = request.getfixturevalue("sim")
        s.reset()
        s.config(apply_delay=0, page_size=100, lro_retry_after=1)
    yield


@pytest.fixture(scope="session")
def clients(sim):
    return sim.sdk_clients()


@pytest.fixture
def arm(sim):
    return Arm(sim)
