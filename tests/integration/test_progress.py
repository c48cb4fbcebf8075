"""Long work shows it is alive: with -v the modules' progress lines (counts, elapsed time) appear
while the module still runs, not with its result. The request is held unapplied by armsim
(apply_hold) until the lines are seen, so the test proves "while it runs", without timing."""

import os
import subprocess
import sys
import time

import yaml
from harness import VENV_BIN, ansible_env

ARMSIM_SEED = "jit_request.yaml"
VM = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-jit/providers/Microsoft.Compute/virtualMachines/nic-1"


def start(armsim, tmp_path, *args):
    play = [
        {
            "name": "Open with progress",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Open SSH",
                    "jitaccess.azure.jit_request": {
                        "virtual_machines": [{"id": VM}],
                        "ports": [22],
                        "source_address_prefixes": ["198.51.100.7"],
                        "duration": "15m",
                    },
                }
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (tmp_path / "inventory.ini").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    log = open(tmp_path / "output.log", "w+", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml"), *args]
    env = ansible_env(armsim)
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)  # the default output a user sees
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT), log


def wait_for(condition, what, proc, log):
    deadline = time.monotonic() + 180
    while not condition():
        assert proc.poll() is None, "the run ended before %s:\n%s" % (what, log_text(log))
        assert time.monotonic() < deadline, "no %s within 180 s:\n%s" % (what, log_text(log))
        time.sleep(0.1)  # polling the output, bounded by the deadline


def log_text(log):
    if not log.closed:
        log.flush()
    with open(log.name, encoding="utf-8") as stream:
        return stream.read()


def test_progress_lines_appear_while_the_module_runs_with_v(armsim, tmp_path):
    armsim.config(apply_hold=True)
    proc, log = start(armsim, tmp_path, "-v")
    try:
        wait_for(lambda: "allow rules applied for 0 of 1 port(s); waiting for nic-1:22" in log_text(log), "wait line", proc, log)
        text = log_text(log)
        assert proc.poll() is None and "changed: [localhost]" not in text  # the module is still running
        lines = [line for line in text.splitlines() if line.startswith("jitaccess.azure.jit_request [localhost] ")]
        assert any("listed" in line and "VMs" in line and "network interfaces" in line for line in lines), lines
        assert any("initiated a JIT request on policy" in line and "1 VM port(s)" in line for line in lines), lines
        assert all(" s: " in line for line in lines)  # elapsed seconds on each line
        armsim.admin("POST", "/apply")
        assert proc.wait(180) == 0, log_text(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        armsim.config(apply_hold=False)
        log.close()
    assert "changed: [localhost]" in log_text(log)


def test_no_progress_lines_at_the_default_verbosity_for_a_short_run(armsim, tmp_path):
    proc, log = start(armsim, tmp_path)
    try:
        assert proc.wait(300) == 0, log_text(log)
    finally:
        log.close()
    text = log_text(log)
    assert "changed: [localhost]" in text and "jitaccess.azure.jit_request [localhost]" not in text, text
