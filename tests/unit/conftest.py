"""Make the shared test data importable as ``fakes`` (tests/unit/fakes.py).

pytest runs with ``--import-mode=importlib``, which puts no test directory on ``sys.path``.
"""

import os
import sys

UNIT = os.path.dirname(os.path.abspath(__file__))
if UNIT not in sys.path:
    sys.path.insert(0, UNIT)
