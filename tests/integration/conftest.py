"""Integration fixtures: one armsim per test module, reset to its seed before every test.

A test module sets ``ARMSIM_SEED`` (a dict, or a path to a seed YAML) and optionally
``ARMSIM_OPTIONS`` (keyword arguments for :class:`armsim.testing.ArmSim`, e.g. apply_delay).
"""

import os

import pytest
from harness import module_armsim

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


@pytest.fixture(scope="module")
def armsim_server(request):
    with module_armsim(request, SEEDS) as sim:
        yield sim


@pytest.fixture
def armsim(armsim_server):
    """The module's armsim, back at its seed with counters and faults cleared."""
    armsim_server.reset()
    yield armsim_server
