"""_module: the shared virtual_machines sub-spec and the strict reading of every int option."""

import os

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _module
from ansible_collections.jitaccess.azure.plugins.modules import jit_policy, jit_request


def test_vm_references_declares_its_constraints_and_extra_options():
    spec = _module.vm_references(ports={"type": "list", "elements": "int"})
    assert spec["required"] is True and spec["type"] == "list" and spec["elements"] == "dict"
    assert set(spec["options"]) == {"id", "name", "resource_group", "ports"}
    assert spec["mutually_exclusive"] == [["id", "name"], ["id", "resource_group"]]
    assert spec["required_one_of"] == [["id", "name"]] and spec["required_together"] == [["name", "resource_group"]]
    assert "required" not in _module.vm_references(required=False)
    assert "ports" not in _module.VM_REFERENCE_OPTIONS  # the shared options are not changed by a caller


@pytest.mark.parametrize("value", ["２２", "٢٢", "+22", "1_000", "22.0", "1e3", " 2 2", True])
def test_loose_numbers_are_refused_wherever_an_int_option_sits(value):
    raw = {
        "wait_timeout": value,
        "ports": [22, value],
        "virtual_machines": [{"name": "web-1", "resource_group": "rg", "ports": [value]}],
    }
    problems = _module.loose_numbers(jit_request.ARGUMENT_SPEC, raw)
    assert [problem.split(" ", 1)[0] for problem in problems] == ["virtual_machines[0].ports", "ports", "wait_timeout"]
    assert all("is not a whole number: allowed ASCII digits 0-9" in problem for problem in problems)
    nested = _module.loose_numbers(jit_policy.ARGUMENT_SPEC, {"virtual_machines": [{"id": "x", "ports": [{"number": value}]}], "ports": [{"number": value}]})
    assert [problem.split(" ", 1)[0] for problem in nested] == ["virtual_machines[0].ports[0].number", "ports[0].number"]


def test_plain_numbers_pass():
    raw = {"wait_timeout": 300, "ports": [22, "3389", " 5985 "], "virtual_machines": [{"id": "x", "ports": None}], "duration": "PT1H"}
    assert _module.loose_numbers(jit_request.ARGUMENT_SPEC, raw) == []
    assert _module.loose_numbers(jit_request.ARGUMENT_SPEC, {"ports": "not a list"}) == []  # Ansible reports the type


def fake_module(secrets=()):
    """An AzureJitModule without AnsibleModule: only what progress() and wait_progress() use."""
    import threading

    module = object.__new__(_module.AzureJitModule)
    module.started, module.secrets, module._progress_lock = 100.0, list(secrets), threading.Lock()
    module._wait_started = module._last_heartbeat = None
    return module


def test_progress_goes_to_the_action_plugins_file_scrubbed_and_nowhere_without_it(tmp_path, monkeypatch):
    import json

    clock = [102.5]
    monkeypatch.setattr(_module.time, "monotonic", lambda: clock[0])
    module = fake_module(secrets=["s3cr3t-value"])
    monkeypatch.delenv(_module._PROGRESS_VARIABLE, raising=False)
    module.progress("no file: nothing written")
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(_module._PROGRESS_VARIABLE, str(path))
    module.progress("not created when missing")
    assert not path.exists()  # only the file the action plugin created is written
    path.write_text("")
    module.progress("listed 3 VMs with s3cr3t-value")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"elapsed": 2.5, "verbosity": 1, "msg": "listed 3 VMs with ********"}]


def test_a_long_wait_shows_a_line_at_the_default_verbosity_every_30_s(tmp_path, monkeypatch):
    import json

    clock = [0.0]
    monkeypatch.setattr(_module.time, "monotonic", lambda: clock[0])
    path = tmp_path / "progress.jsonl"
    path.write_text("")
    monkeypatch.setenv(_module._PROGRESS_VARIABLE, str(path))
    module = fake_module()
    for second in (0, 5, 29, 30, 45, 61):
        clock[0] = float(second)
        module.wait_progress("3 ports pending")
    levels = [(json.loads(line)["verbosity"], json.loads(line)["msg"]) for line in path.read_text().splitlines()]
    assert [level for level, _msg in levels] == [1, 1, 1, 0, 1, 0]
    assert levels[3][1] == "3 ports pending (waiting 30 s)"


CHILD = """
import signal, sys, threading
sys.path[:0] = %r
from ansible_collections.jitaccess.azure.plugins.module_utils import _module
# as Python starts a module: KeyboardInterrupt, unless the run ignores SIGINT (pytest itself may run
# with SIGINT ignored, as a background job of a non-interactive shell)
signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == "ignored" else signal.default_int_handler)
_module.end_at_interrupt()
print(signal.getsignal(signal.SIGINT).name, flush=True)
release = threading.Event()
threading.Thread(target=release.wait, args=(120,)).start()  # an ARM call in flight, in a pool thread
release.wait(120)
"""


@pytest.mark.parametrize("start", ["default", "ignored"])
def test_ctrl_c_ends_a_module_at_once_unless_the_run_ignores_it(start):
    import signal
    import subprocess
    import sys

    import ansible_collections

    roots = [os.path.dirname(path) for path in ansible_collections.__path__] + [p for p in sys.path if p]
    child = subprocess.Popen([sys.executable, "-c", CHILD % (roots,), start], stdout=subprocess.PIPE, text=True)
    try:
        shown = child.stdout.readline().strip()  # the handler in force: the child is ready
        child.send_signal(signal.SIGINT)
        if start == "default":
            assert shown == "SIG_DFL"
            # ended by the signal itself, not after the other thread (KeyboardInterrupt would wait 120 s)
            assert child.wait(timeout=60) == -signal.SIGINT
        else:
            assert shown == "SIG_IGN"
            with pytest.raises(subprocess.TimeoutExpired):
                child.wait(timeout=1)  # still running: a bounded check that it ignored the signal
    finally:
        child.kill()
        child.wait()
