"""Run the installed collection through real ``ansible-playbook`` against armsim.

Every integration test goes through :func:`run_module` or :func:`run_playbook`: a real
ansible-playbook process, the collection as built and installed by ansible-galaxy, the real Azure
SDKs, TLS verified against armsim's CA. Results come back through a small recording callback.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import pytest
import yaml

from armsim.testing import ArmSim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")
VENV_BIN = os.path.dirname(sys.executable)


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list = field(default_factory=list)

    def result(self, task=None):
        """The result of the named task (or the last recorded one)."""
        matches = [r for r in self.results if task is None or r["task"] == task]
        assert matches, "no result recorded for task %r; stdout:\n%s\nstderr:\n%s" % (task, self.stdout, self.stderr)
        return matches[-1]["result"]


def collections_path():
    """Where ``make install`` put the built collection (set by the Makefile), else build it here."""
    path = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    if path and os.path.exists(os.path.join(path, "ansible_collections", "jitaccess", "azure", "MANIFEST.json")):
        return path
    path = os.path.join(ROOT, ".build", "collections")
    subprocess.run(["make", "-C", ROOT, "install"], check=True, capture_output=True)
    return path


def ansible_env(armsim, extra=None):
    env = dict(os.environ)
    env.update(armsim.env())
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path(),
        ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
        ANSIBLE_CALLBACKS_ENABLED="record_results",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
    )
    env.update(extra or {})
    return {key: value for key, value in env.items() if value is not None}  # None in ``extra`` unsets


def run_playbook(armsim, plays, *, check=False, diff=False, extra_vars=None, env=None, args=(), timeout=600, inventory=None):
    """Run ``plays`` (a list of play dicts, or YAML text, or a path) and return a :class:`PlaybookRun`."""
    with tempfile.TemporaryDirectory(prefix="jit-it-") as tmp:
        if isinstance(plays, str) and os.path.exists(plays):
            playbook = plays
        else:
            playbook = os.path.join(tmp, "playbook.yml")
            with open(playbook, "w", encoding="utf-8") as stream:
                stream.write(plays if isinstance(plays, str) else yaml.safe_dump(plays, sort_keys=False))
        if inventory is None:
            inventory = os.path.join(tmp, "inventory.ini")
            with open(inventory, "w", encoding="utf-8") as stream:
                stream.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        record = os.path.join(tmp, "results.jsonl")
        command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook, *args]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        run_env = ansible_env(armsim, dict(env or {}, RECORD_RESULTS_PATH=record))
        proc = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=timeout, cwd=tmp, check=False)
        results = []
        if os.path.exists(record):
            with open(record, encoding="utf-8") as stream:
                results = [json.loads(line) for line in stream if line.strip()]
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


def run_module(armsim, module, module_args, *, check=False, diff=False, env=None, expect_failure=False, args=()):
    """Run one module task on localhost; return its result dict.

    Asserts the task failed when ``expect_failure`` and succeeded otherwise, showing the output.
    """
    name = module if "." in module else "jitaccess.azure." + module
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "under test", name: module_args}]}]
    run = run_playbook(armsim, play, check=check, diff=diff, env=env, args=args)
    result = run.result("under test")
    failed = bool(result.get("failed"))
    assert failed == expect_failure, "task %s unexpectedly: %s\nstdout:\n%s\nstderr:\n%s" % (
        "succeeded" if expect_failure else "failed",
        json.dumps(result, indent=2, default=str)[:4000],
        run.stdout[-4000:],
        run.stderr[-4000:],
    )
    result["_run"] = run
    return result


def armsim_fixtures(seeds_dir):
    """The ``armsim_server`` (one armsim per test module, see :func:`module_armsim`) and ``armsim``
    (that server back at its seed, counters and faults cleared) fixtures, for a conftest to bind."""

    @pytest.fixture(scope="module")
    def armsim_server(request):
        with module_armsim(request, seeds_dir) as sim:
            yield sim

    @pytest.fixture
    def armsim(armsim_server):
        """The module's armsim, back at its seed with counters and faults cleared."""
        armsim_server.reset()
        yield armsim_server

    return armsim_server, armsim


@contextlib.contextmanager
def module_armsim(request, seeds_dir):
    """armsim for one test module: its ``ARMSIM_SEED`` (a dict, or a file under ``seeds_dir``)
    and optional ``ARMSIM_OPTIONS`` (keyword arguments for :class:`armsim.testing.ArmSim`)."""
    seed = getattr(request.module, "ARMSIM_SEED", None)
    assert seed is not None, "set ARMSIM_SEED in %s" % request.module.__name__
    if isinstance(seed, str) and not os.path.isabs(seed):
        seed = os.path.join(seeds_dir, seed)
    with ArmSim(seed, **getattr(request.module, "ARMSIM_OPTIONS", {})) as sim:
        yield sim
