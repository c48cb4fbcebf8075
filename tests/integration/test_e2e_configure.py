"""End to end, over real SSH: armsim's data-plane gate in front of a throwaway local sshd.

playbooks/configure_with_jit.yml cannot reach the host before JIT access is opened, configures it
over SSH through the gate once the allow rule exists (writes a file), and the port is closed
again afterwards. With jit_guard enabled, SIGINT during the configuration closes access too.
"""

import getpass
import json
import os
import signal
import subprocess
import time

import pytest
from harness import VENV_BIN, ansible_env, run_playbook
from roles_support import PLAYBOOKS, jit_rules, write_inventory
from sshd_support import free_port, local_sshd

SSHD_PORT = free_port()
ARMSIM_SEED = {
    "subscription_id": "00000000-0000-0000-0000-000000000001",
    "resource_groups": [
        {
            "name": "rg-e2e",
            "location": "westeurope",
            "network_security_groups": [{"name": "nsg-e2e"}],
            "virtual_networks": [
                {"name": "vnet-e2e", "address_space": "10.9.0.0/16", "subnets": [{"name": "default", "prefix": "10.9.0.0/24", "nsg": "nsg-e2e"}]}
            ],
            "virtual_machines": [
                {
                    "name": "e2e-1",
                    "nics": [{"subnet": "vnet-e2e/default", "private_ip": "10.9.0.4"}],
                    "gates": [{"port": 22, "backend": "127.0.0.1:%d" % SSHD_PORT}],
                }
            ],
        }
    ],
    "jit_policies": [{"name": "default", "resource_group": "rg-e2e", "virtual_machines": ["e2e-1"]}],
}
ARMSIM_OPTIONS = {"apply_delay": 2}
PLAYBOOK = os.path.join(PLAYBOOKS, "configure_with_jit.yml")
# A new TCP connection per SSH session: a persistent ControlMaster connection, established while
# access was open, would outlive the close (as an established flow does in Azure).
SSH_ENV = {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no", "ANSIBLE_PIPELINING": "True", "ANSIBLE_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def sshd():
    """sshd on 127.0.0.1:SSHD_PORT with throwaway host and client keys, for the current user."""
    with local_sshd(SSHD_PORT) as server:
        yield server


def inventory_for(armsim, sshd, path):
    hostvars = {
        "ansible_connection": "ssh",
        "ansible_user": getpass.getuser(),
        "ansible_ssh_private_key_file": sshd["key"],
        "ansible_ssh_common_args": "'-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
    }
    return write_inventory(armsim, path, [("e2e-1", "rg-e2e", hostvars)], group="jit_targets")


def ping(armsim, inventory):
    play = [{"hosts": "jit_targets", "gather_facts": False, "tasks": [{"name": "ping", "ansible.builtin.ping": {}}]}]
    run = run_playbook(armsim, play, inventory=inventory, env=SSH_ENV)
    return run.results[-1]["status"] if run.results else "none"


def test_configure_over_ssh_only_while_jit_access_is_open(armsim, sshd, tmp_path):
    inventory = inventory_for(armsim, sshd, str(tmp_path / "inventory.ini"))
    marker = tmp_path / "configured.txt"
    assert ping(armsim, inventory) == "unreachable"  # JIT deny rule: the gate refuses 127.0.0.1
    denied_before = armsim.gates()["e2e-1:22"]["denied"]

    extra = {
        "jit_access_source_address_prefixes": ["127.0.0.1"],
        "jit_access_ports": [22],
        "jit_access_duration": "15m",
        "jit_access_port_search_regex": "^SSH-",
        "configure_with_jit_marker": str(marker),
    }
    run = run_playbook(armsim, PLAYBOOK, inventory=inventory, extra_vars=extra, env=SSH_ENV)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert marker.read_text().startswith("configured through JIT access by jitaccess.azure\nhost: e2e-1")
    facts = run.result("Gather facts now that the port is open")
    assert facts["ansible_facts"]["ansible_user_id"] == getpass.getuser()  # gathered over SSH
    assert armsim.gates()["e2e-1:22"]["admitted"] >= 2
    assert jit_rules(armsim) == []

    assert ping(armsim, inventory) == "unreachable"
    assert armsim.gates()["e2e-1:22"]["denied"] > denied_before
    ops = armsim.stats()["by_operation"]
    assert ops["POST initiate"] == 1 and ops["DELETE securityRules"] == 1


def test_sigint_during_configuration_closes_within_30_seconds(armsim, sshd, tmp_path):
    inventory = inventory_for(armsim, sshd, str(tmp_path / "inventory.ini"))
    marker = tmp_path / "configured.txt"
    tasks = tmp_path / "long.yml"
    running = tmp_path / "running"  # written by the long step once it runs: a condition to wait on
    tasks.write_text("- name: Long configuration step\n  ansible.builtin.shell: touch %s && sleep 300\n  changed_when: false\n" % running)
    extra = {
        "jit_access_source_address_prefixes": ["127.0.0.1"],
        "jit_access_ports": [22],
        "jit_access_duration": "15m",
        "jit_access_port_search_regex": "^SSH-",
        "configure_with_jit_marker": str(marker),
        "configure_with_jit_tasks": str(tasks),
    }
    env = ansible_env(armsim, dict(SSH_ENV, ANSIBLE_CALLBACKS_ENABLED="jitaccess.azure.jit_guard"))
    command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, PLAYBOOK, "-e", json.dumps(extra)]
    with open(tmp_path / "out.log", "w+", encoding="utf-8") as out:
        proc = subprocess.Popen(command, env=env, cwd=str(tmp_path), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert proc.poll() is None, "ansible-playbook ended early"
                assert time.monotonic() < deadline, "the host was never configured"
                time.sleep(0.2)
            assert [rule["destination"] for rule in jit_rules(armsim)] == ["10.9.0.4"]
            while not running.exists():  # inside the long configuration step
                assert proc.poll() is None and time.monotonic() < deadline, "the long step never started"
                time.sleep(0.2)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            while jit_rules(armsim):
                assert time.monotonic() - sent < 30, "allow rule still present 30 s after SIGINT"
                time.sleep(0.5)
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        output = out.read()
    assert "jit_guard: SIGINT received; closing 1 JIT access this run opened" in output, output[-3000:]
    assert "jit_guard: closed e2e-1 port 22 from 127.0.0.1" in output
    assert ping(armsim, inventory) == "unreachable"
