"""Make the working tree importable as ``ansible_collections.jitaccess.azure``.

The repository root *is* the collection, but Python (and Ansible) only find it under an
``ansible_collections/<namespace>/<name>`` directory. A symlink under ``.build/`` gives it that
shape without copying. ``tools/`` goes on the path for ``armsim`` and ``tests/integration`` for the
shared ``harness`` (pytest runs with ``--import-mode=importlib``, so test files with the same
basename in different suites do not clash).
"""

import contextlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(ROOT, ".build", "src")
LINK = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "jitaccess", "azure")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another xdist worker made it first
        os.symlink(ROOT, LINK)

for path in (COLLECTIONS_ROOT, os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests", "integration")):
    if path not in sys.path:
        sys.path.insert(0, path)

try:  # not every test environment has Hypothesis (the compat environment does not need it)
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    # No deadline: on a loaded 2-core CI machine an example may take seconds without any defect.
    settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
