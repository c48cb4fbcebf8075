"""jit_guard callback: whatever jit_request opened during a run is closed when the run ends —
normal end, failure, SIGINT or SIGTERM — and nothing it did not open is touched."""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from harness import VENV_BIN, ansible_env, run_module, run_playbook
from roles_support import jit_rules

ARMSIM_SEED = "roles_access.yaml"
ARMSIM_OPTIONS = {"apply_delay": 1}
GUARD_ENV = {"ANSIBLE_CALLBACKS_ENABLED": "record_results,jitaccess.azure.jit_guard"}
SOURCE = "127.0.0.1"


def open_task(*vms, name="open"):
    return {
        "name": name,
        "jitaccess.azure.jit_request": {
            "virtual_machines": [{"name": vm, "resource_group": group} for vm, group in vms],
            "ports": [22],
            "source_address_prefixes": [SOURCE],
            "duration": "30m",
        },
    }


def test_failed_run_closes_what_it_opened_and_nothing_else(armsim):
    # Someone else's access, opened before the run: the guard must leave it alone.
    other = run_module(
        armsim,
        "jit_request",
        {"virtual_machines": [{"name": "app-2", "resource_group": "rg-app"}], "ports": [22], "source_address_prefixes": ["198.51.100.7"], "duration": "1h"},
    )
    assert other["changed"]
    before = jit_rules(armsim)
    assert [(rule["nsg"], rule["destination"], rule["sources"]) for rule in before] == [("nsg-app", "10.1.0.5", ["198.51.100.7"])]
    denies = jit_rules(armsim, "deny")
    armsim.reset_stats()

    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                open_task(("app-1", "rg-app"), ("app-3", "rg-app"), ("db-1", "rg-db")),
                {
                    "name": "close db-1 explicitly",
                    "jitaccess.azure.jit_request": {"virtual_machines": [{"name": "db-1", "resource_group": "rg-db"}], "state": "absent"},
                },
                {"name": "configuration fails", "ansible.builtin.fail": {"msg": "simulated configuration failure"}},
            ],
        }
    ]
    run = run_playbook(armsim, play, env=GUARD_ENV)
    assert run.rc == 2, run.stdout + run.stderr
    opened = run.result("open")["opened"]
    assert sorted(item["vm_name"] for item in opened) == ["app-1", "app-3", "db-1"]
    assert "jit_guard: the run ended; closing 2 JIT accesses this run opened" in run.stdout, run.stdout
    assert "jit_guard: closed app-1 port 22 from 127.0.0.1" in run.stdout
    assert "jit_guard: all JIT access opened by this run is closed" in run.stdout
    assert "db-1" not in run.stdout.split("jit_guard:", 1)[1]  # closed by the play, not by the guard
    assert armsim.info["client_secret"] not in run.stdout + run.stderr

    # Only the other party's rule is left; deny rules untouched.
    assert jit_rules(armsim) == before
    assert jit_rules(armsim, "deny") == denies
    ops = armsim.stats()["by_operation"]
    # app-1: subnet NSG; app-3: subnet + NIC NSG; db-1: NIC NSG -> 4 allow rules, each deleted once
    assert ops.get("DELETE securityRules") == 4
    assert ops.get("POST initiate") == 2


def test_successful_run_that_closed_everything_makes_no_extra_call(armsim):
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                open_task(("app-1", "rg-app")),
                {
                    "name": "close",
                    "jitaccess.azure.jit_request": {
                        "virtual_machines": [{"name": "app-1", "resource_group": "rg-app"}],
                        "ports": [22],
                        "source_address_prefixes": [SOURCE],
                        "state": "absent",
                    },
                },
            ],
        }
    ]
    run = run_playbook(armsim, play, env=GUARD_ENV)
    assert run.rc == 0, run.stdout + run.stderr
    assert "jit_guard: the playbook closed every JIT access it opened (1); nothing left to close" in run.stdout
    assert jit_rules(armsim) == []
    assert armsim.stats()["by_operation"].get("DELETE securityRules") == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_long_task_closes_within_30_seconds(armsim, signum):
    with tempfile.TemporaryDirectory(prefix="jit-guard-") as tmp:
        ready = os.path.join(tmp, "opened")
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    open_task(("app-1", "rg-app"), ("db-1", "rg-db")),
                    {"name": "mark", "ansible.builtin.copy": {"content": "open\n", "dest": ready, "mode": "0644"}},
                    # says it is running (a condition to wait on), then runs for 5 minutes
                    {"name": "long configuration", "ansible.builtin.shell": "touch %s.running && sleep 300" % ready, "changed_when": False},
                ],
            }
        ]
        playbook = os.path.join(tmp, "playbook.yml")
        with open(playbook, "w", encoding="utf-8") as stream:
            yaml.safe_dump(play, stream)
        inventory = os.path.join(tmp, "inventory.ini")
        with open(inventory, "w", encoding="utf-8") as stream:
            stream.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        env = ansible_env(armsim, dict(GUARD_ENV, RECORD_RESULTS_PATH=os.path.join(tmp, "results.jsonl")))
        with open(os.path.join(tmp, "out.log"), "w+", encoding="utf-8") as out:
            command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook]
            proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while not os.path.exists(ready):
                    assert proc.poll() is None, "ansible-playbook ended early"
                    assert time.monotonic() < deadline, "the access was never opened"
                    time.sleep(0.2)
                opened = jit_rules(armsim)
                assert {rule["destination"] for rule in opened} == {"10.1.0.4", "10.2.0.4"}
                while not os.path.exists(ready + ".running"):  # the long task is running
                    assert proc.poll() is None and time.monotonic() < deadline, "the long task never started"
                    time.sleep(0.2)
                sent = time.monotonic()
                proc.send_signal(signum)
                while jit_rules(armsim):
                    assert time.monotonic() - sent < 30, "allow rules still present 30 s after %s" % signum.name
                    time.sleep(0.5)
                closed_after = time.monotonic() - sent
                proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            out.seek(0)
            output = out.read()
    assert proc.returncode != 0
    assert "jit_guard: %s received; closing 2 JIT accesses this run opened" % signum.name in output, output
    assert "jit_guard: all JIT access opened by this run is closed" in output
    assert closed_after < 30
    assert jit_rules(armsim, "deny"), "deny rules must stay"


def test_modules_see_the_record_and_access_not_applied_yet_is_closed(armsim):
    """The record path reaches modules run on localhost (connection local and delegate_to), and an
    access whose rules are not there yet when the run ends (wait: false) is waited for and closed."""
    task = open_task(("app-1", "rg-app"))
    task["jitaccess.azure.jit_request"]["wait"] = False
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "env local", "ansible.builtin.command": "printenv JITACCESS_GUARD_RECORD", "changed_when": False},
                {"name": "env delegated", "ansible.builtin.command": "printenv JITACCESS_GUARD_RECORD", "changed_when": False, "delegate_to": "localhost"},
                {"name": "record", "ansible.builtin.slurp": {"src": "{{ lookup('env', 'JITACCESS_GUARD_RECORD') }}"}, "register": "record"},
                task,
                {"name": "record after", "ansible.builtin.slurp": {"src": "{{ lookup('env', 'JITACCESS_GUARD_RECORD') }}"}},
            ],
        }
    ]
    armsim.config(apply_delay=15)  # the rules come after the run's end (a loaded CI machine included)
    try:
        run = run_playbook(armsim, play, env=GUARD_ENV)
    finally:
        armsim.config(apply_delay=ARMSIM_OPTIONS["apply_delay"])
    assert run.rc == 0, run.stdout + run.stderr
    path = run.result("env local")["stdout"]
    assert path.endswith("/opened.jsonl") and run.result("env delegated")["stdout"] == path
    assert not os.path.exists(os.path.dirname(path)), "the record directory is removed at exit"
    import base64
    import json

    assert base64.b64decode(run.result("record")["content"]) == b""
    lines = base64.b64decode(run.result("record after")["content"]).decode().splitlines()
    (entry,) = [json.loads(line) for line in lines]
    assert (entry["vm_name"], entry["port"], entry["source"]) == ("app-1", 22, SOURCE)
    assert armsim.info["client_secret"] not in "\n".join(lines)
    assert run.result("open")["opened"][0]["nsg_rules"] == []  # wait: false
    assert "jit_guard: waiting up to" in run.stdout, run.stdout
    assert "jit_guard: closed app-1 port 22 from 127.0.0.1" in run.stdout, run.stdout
    assert jit_rules(armsim) == []
    assert armsim.stats()["by_operation"].get("DELETE securityRules") == 1


def test_the_record_is_written_before_the_initiate_and_a_refusal_withdraws_it(armsim):
    """With a known source, jit_request records the ports before its initiate (a signal while Azure
    holds the request still finds them); an initiate Azure refuses withdraws exactly those lines, so
    the guard neither waits for nor reports access that never opened."""
    import base64
    import json

    armsim.fault(method="POST", path_contains="initiate", status=403, code="AuthorizationFailed", message="No initiate here.")
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                dict(open_task(("app-1", "rg-app")), ignore_errors=True),
                {"name": "record after", "ansible.builtin.slurp": {"src": "{{ lookup('env', 'JITACCESS_GUARD_RECORD') }}"}},
            ],
        }
    ]
    run = run_playbook(armsim, play, env=GUARD_ENV)
    armsim.clear_faults()
    assert run.result("open")["failed"] and "AuthorizationFailed" in run.result("open")["msg"]
    lines = [json.loads(line) for line in base64.b64decode(run.result("record after")["content"]).decode().splitlines()]
    assert [(line.get("kind"), line["vm_id"].rsplit("/", 1)[1], line["port"]) for line in lines] == [(None, "app-1", 22), ("withdrawn", "app-1", 22)]
    assert lines[0]["attempt"] and lines[1]["attempt"] == lines[0]["attempt"] and lines[0]["source"] == SOURCE
    assert armsim.stats()["by_operation"].get("POST initiate") == 1
    assert "jit_guard: waiting up to" not in run.stdout and "may still be open" not in run.stdout, run.stdout
    assert run.rc == 0, run.stdout + run.stderr  # ignore_errors: the run succeeds, nothing is left to close
    assert jit_rules(armsim) == []
