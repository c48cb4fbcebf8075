"""The molecule scenarios of both roles (extensions/molecule), so that `make test` runs them.

Each scenario starts its own armsim (create), converges the role against it, asserts armsim's
state and write counts through its admin API (verify), and stops it (destroy).
"""

import os
import subprocess

import pytest
from harness import ROOT, VENV_BIN, collections_path


@pytest.mark.parametrize("scenario", ["jit_fleet", "jit_access"])
def test_molecule_scenario(scenario):
    env = dict(os.environ)
    env.update(
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
        ANSIBLE_COLLECTIONS_PATH=collections_path(),
        PYTHONPATH=os.path.join(ROOT, "tools"),
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
    )
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "verify: Executed: Successful" in " ".join(output.split()), output[-3000:]
