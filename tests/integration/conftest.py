"""Integration fixtures: one armsim per test module, reset to its seed before every test.

A test module sets ``ARMSIM_SEED`` (a dict, or a path to a seed YAML) and optionally
``ARMSIM_OPTIONS`` (keyword arguments for :class:`armsim.testing.ArmSim`, e.g. apply_delay).
"""

import os

from harness import armsim_fixtures

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


armsim_server, armsim = armsim_fixtures(SEEDS)
