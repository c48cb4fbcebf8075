"""Integration fixtures: one armsim per test module, reset to its seed before every test.

A test module sets ``ARMSIM_SEED`` (a dict, or a path to a seed YAML) and optionally
``ARMSIM_OPTIONS`` (keyword arguments for :class:`armsim.testing.ArmSim`, e.g. apply_delay).
"""

import os

import pytest

from armsim.testing import ArmSim

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


@pytest.fixture(scope="module")
def armsim_server(request):
    seed = getattr(request.module, "ARMSIM_SEED", None)
    assert seed is not None, "set ARMSIM_SEED in %s" % request.module.__name__
    if isinstance(seed, str) and not os.path.isabs(seed):
        seed = os.path.join(SEEDS, seed)
    options = getattr(request.module, "ARMSIM_OPTIONS", {})
    with ArmSim(seed, **options) as sim:
        yield sim


@pytest.fixture
def armsim(armsim_server):
    """The module's armsim, back at its seed with counters and faults cleared."""
    armsim_server.reset()
    yield armsim_server
