"""Compat fixtures: one armsim per test module, reset to its seed before every test (the same
``harness.armsim_fixtures`` pair as tests/integration), with seeds from tests/compat/seeds."""

import os

from harness import armsim_fixtures

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


armsim_server, armsim = armsim_fixtures(SEEDS)
