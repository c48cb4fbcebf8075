"""AWX / Automation Platform: playbooks/configure_with_jit.yml as an AWX job runs it.

AWX and the execution-environment tooling run playbooks through ansible-runner
(``ansible_runner.run(private_data_dir=..., playbook=..., inventory=..., envvars=..., extravars=...)``)
and hand cloud credentials over as environment variables. For a "Microsoft Azure Resource Manager"
credential with a service principal, AWX's injector (awx/main/models/credential/injectors.py,
``azure_rm``) sets AZURE_SUBSCRIPTION_ID, AZURE_CLIENT_ID, AZURE_TENANT, AZURE_SECRET and, when
the credential names one, AZURE_CLOUD_ENVIRONMENT - nothing else. These tests give the job exactly
that (plus the CA bundle and AZURE_DISABLE_INSTANCE_DISCOVERY that armsim needs), with every other
AZURE_* variable removed from the test process, and the jit_guard callback enabled through
ANSIBLE_CALLBACKS_ENABLED. The project holds a one-line playbook that imports
jitaccess.azure.configure_with_jit from the installed collection, as an AWX project would.

The hosts are reached over real SSH (a throwaway sshd behind armsim's data-plane gates), with the
key handed to ansible-runner as AWX hands a Machine credential's key (``ssh_key``: ssh-agent).

The second test cancels the job the way AWX does - ansible-runner's cancel callback, which
SIGKILLs ansible-playbook's process group - and shows what docs/awx.md says: no callback and no
``always`` block survives SIGKILL, the JIT access stays open, and the clean-up playbook from
docs/awx.md finds and closes it.
"""

from __future__ import annotations

import collections
import getpass
import json
import os
import re

import ansible_runner
import pytest
import yaml
from harness import VENV_BIN, collections_path, run_playbook
from roles_support import ROOT, jit_rules, vm_id, write_inventory
from sshd_support import free_port, local_sshd

SSHD_PORT = free_port()
# A value found nowhere else, so that a search of the job's artifacts for it means something.
SECRET = "awx-injected-Sp-secret-7c41e9d2b0"  # noqa: S105 - armsim's test principal
CLIENT_ID = "00000000-0000-0000-0000-0000000000a1"
GATES = [{"port": 22, "backend": "127.0.0.1:%d" % SSHD_PORT}]
ARMSIM_SEED = {
    "subscription_id": "00000000-0000-0000-0000-000000000001",
    "principals": [{"client_id": CLIENT_ID, "client_secret": SECRET, "name": "awx-azure-rm-credential"}],
    "resource_groups": [
        {
            "name": "rg-awx-web",
            "location": "westeurope",
            "network_security_groups": [{"name": "nsg-awx-web"}],
            "virtual_networks": [
                {"name": "vnet-awx-web", "address_space": "10.7.0.0/16", "subnets": [{"name": "default", "prefix": "10.7.0.0/24", "nsg": "nsg-awx-web"}]}
            ],
            "virtual_machines": [
                {"name": "awx-web-1", "nics": [{"subnet": "vnet-awx-web/default", "private_ip": "10.7.0.4"}], "gates": GATES},
                {"name": "awx-web-2", "nics": [{"subnet": "vnet-awx-web/default", "private_ip": "10.7.0.5"}], "gates": GATES},
            ],
        },
        {
            "name": "rg-awx-db",
            "location": "northeurope",
            "network_security_groups": [{"name": "nsg-awx-db1-nic"}],
            "virtual_networks": [{"name": "vnet-awx-db", "address_space": "10.8.0.0/16", "subnets": [{"name": "default", "prefix": "10.8.0.0/24"}]}],
            "virtual_machines": [
                {"name": "awx-db-1", "nics": [{"subnet": "vnet-awx-db/default", "private_ip": "10.8.0.4", "nsg": "nsg-awx-db1-nic"}], "gates": GATES},
            ],
        },
    ],
    "jit_policies": [
        {"name": "default", "resource_group": "rg-awx-web", "virtual_machines": ["awx-web-1", "awx-web-2"]},
        {"name": "default", "resource_group": "rg-awx-db", "virtual_machines": ["awx-db-1"]},
    ],
}
ARMSIM_OPTIONS = {"apply_delay": 1}
HOSTS = [("awx-web-1", "rg-awx-web"), ("awx-web-2", "rg-awx-web"), ("awx-db-1", "rg-awx-db")]
HOST_NAMES = sorted(name for name, _group in HOSTS)
PRIVATE_IPS = ["10.7.0.4", "10.7.0.5", "10.8.0.4"]
POLICY = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/%s/providers/Microsoft.Security/locations/%s/jitNetworkAccessPolicies/default"
POLICIES = {POLICY % ("rg-awx-web", "westeurope"), POLICY % ("rg-awx-db", "northeurope")}
# The variables AWX's azure_rm injector sets for a service principal with a cloud environment.
AWX_AZURE_RM_VARIABLES = {"AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_TENANT", "AZURE_SECRET", "AZURE_CLOUD_ENVIRONMENT"}
# A new TCP connection per SSH session, as in test_e2e_configure.py: a ControlPersist master opened
# while access was open would outlive the close.
SSH_ENV = {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no", "ANSIBLE_PIPELINING": "True", "ANSIBLE_TIMEOUT": "5"}
# Records the AZURE_* variable names (never values) that the job's controller process sees.
RECORD_AZURE_NAMES = """\
- name: Record the AZURE_* variable names the job's controller process sees
  ansible.builtin.shell: "env | sed -n 's/^\\\\(AZURE_[A-Z0-9_]*\\\\)=.*/\\\\1/p' | sort"
  delegate_to: localhost
  run_once: true
  changed_when: false
"""
LONG_STEP = """\
- name: Long configuration step
  ansible.builtin.command: sleep 120
  changed_when: false
"""


@pytest.fixture(scope="module")
def sshd():
    with local_sshd(SSHD_PORT) as server:
        yield server


@pytest.fixture
def awx_process_env(monkeypatch):
    """The test process as an AWX job's parent: ansible-runner seeds the job's environment from
    os.environ, so no AZURE_* variable, ANSIBLE_AZURE_AUTH_SOURCE, callback list or ansible.cfg
    may come from here."""
    for name in list(os.environ):
        if name.startswith("AZURE_") or name in ("ANSIBLE_AZURE_AUTH_SOURCE", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CONFIG"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))


def awx_credential_env(sim):
    """What AWX injects for a "Microsoft Azure Resource Manager" credential (service principal,
    cloud environment = armsim's ARM metadata URL), plus what armsim needs: its CA and no instance
    discovery (a private authority)."""
    info = sim.info
    return {
        "AZURE_SUBSCRIPTION_ID": info["subscription_id"],
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_TENANT": info["tenant_id"],
        "AZURE_SECRET": SECRET,
        "AZURE_CLOUD_ENVIRONMENT": info["metadata_url"],
        "REQUESTS_CA_BUNDLE": info["ca_bundle"],
        "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
    }


def prepare_job(sim, tmp_path, tasks_text):
    """An AWX-like private data dir: project/ with the wrapper playbook and the extra task file,
    inventory/hosts with each host's VM id and gate. Returns (private_data_dir, inventory, extravars)."""
    private = tmp_path / "job"
    project = private / "project"
    project.mkdir(parents=True)
    (private / "inventory").mkdir()
    (project / "configure_with_jit.yml").write_text(
        "---\n- name: Open, configure, close through JIT access\n  ansible.builtin.import_playbook: jitaccess.azure.configure_with_jit\n"
    )
    (project / "extra_tasks.yml").write_text(tasks_text)
    hostvars = {
        "ansible_connection": "ssh",
        "ansible_user": getpass.getuser(),
        "ansible_ssh_common_args": "'-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
    }
    inventory = write_inventory(sim, str(private / "inventory" / "hosts"), [(name, group, hostvars) for name, group in HOSTS], group="jit_targets")
    (tmp_path / "markers").mkdir()
    extravars = {
        "jit_access_source_address_prefixes": ["127.0.0.1"],
        "jit_access_ports": [22],
        "jit_access_duration": "15m",
        "jit_access_port_search_regex": "^SSH-",
        "jit_access_port_timeout": 60,
        "configure_with_jit_marker": str(tmp_path / "markers") + "/{{ inventory_hostname }}.txt",
        "configure_with_jit_tasks": str(project / "extra_tasks.yml"),
    }
    return private, inventory, extravars


def run_job(sim, sshd, private, inventory, extravars, **kwargs):
    envvars = dict(awx_credential_env(sim))
    envvars.update(SSH_ENV)
    envvars.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path(),
        ANSIBLE_CALLBACKS_ENABLED="jitaccess.azure.jit_guard",
        ANSIBLE_NOCOLOR="1",
        PATH=VENV_BIN + os.pathsep + os.environ["PATH"],
    )
    with open(sshd["key"], encoding="utf-8") as stream:
        ssh_key = stream.read()
    kwargs.setdefault("cancel_callback", lambda: False)  # else ansible-runner takes over SIGINT/SIGTERM of pytest
    return ansible_runner.run(
        private_data_dir=str(private),
        playbook="configure_with_jit.yml",
        inventory=inventory,
        envvars=envvars,
        extravars=extravars,
        ssh_key=ssh_key,
        quiet=True,
        settings={"job_timeout": 300, "pexpect_timeout": 1},
        **kwargs,
    )


def stdout_of(runner):
    with runner.stdout as stream:
        return stream.read()


def ok_events(events, task):
    return [event for event in events if event["event"] == "runner_on_ok" and event["event_data"].get("task") == task]


def ok_hosts(events, task):
    return sorted(event["event_data"]["host"] for event in ok_events(events, task))


def initiates_per_policy(sim):
    counts = collections.Counter()
    for request in sim.requests():
        if request["operation"] == "POST initiate":
            counts[request["path"].rsplit("/initiate", 1)[0].lower()] += 1
    return counts


def files_containing(root, needle):
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and needle.encode() in path.read_bytes():  # not the ssh-agent key FIFO
            found.append(str(path.relative_to(root)))
    return found


def test_configure_with_jit_as_an_awx_job(armsim, sshd, tmp_path, awx_process_env):
    private, inventory, extravars = prepare_job(armsim, tmp_path, RECORD_AZURE_NAMES)
    denies = jit_rules(armsim, "deny")

    runner = run_job(armsim, sshd, private, inventory, extravars)
    output = stdout_of(runner)
    assert runner.status == "successful" and runner.rc == 0, output[-5000:]
    events = list(runner.events)

    # One initiate per JIT policy for the whole batch, nothing else written but the closing deletes.
    ops = armsim.stats()["by_operation"]
    assert initiates_per_policy(armsim) == {policy.lower(): 1 for policy in POLICIES}
    assert ops["POST initiate"] == len(POLICIES)
    assert ops["DELETE securityRules"] == len(HOSTS)  # one allow rule per VM (one NSG on each path)
    assert not ops.get("PUT securityRules") and not ops.get("PUT jitNetworkAccessPolicies")

    # The configuration ran on every host, over SSH through the gate, once access was open.
    assert ok_hosts(events, "Gather facts now that the port is open") == HOST_NAMES
    assert ok_hosts(events, "Write the configuration marker") == HOST_NAMES
    for name in HOST_NAMES:
        assert (tmp_path / "markers" / ("%s.txt" % name)).read_text().startswith("configured through JIT access by jitaccess.azure\nhost: %s" % name)
    gates = armsim.gates()
    assert all(gates["%s:22" % name]["admitted"] >= 2 for name in HOST_NAMES), gates  # port wait + SSH

    # Closed again: no JIT allow rule on any NSG, the deny rules as before.
    (closed,) = ok_events(events, "Close JIT access for every VM of the batch now")
    assert sorted({item["vm_name"] for item in closed["event_data"]["res"]["closed"]}) == HOST_NAMES
    assert jit_rules(armsim) == []
    assert jit_rules(armsim, "deny") == denies

    # jit_guard ran inside the job (enabled through the environment) and found nothing left to close.
    assert "jit_guard: the playbook closed every JIT access it opened (%d); nothing left to close" % len(HOSTS) in output, output[-3000:]

    # The job saw exactly the credential's AZURE_* variables (plus armsim's instance-discovery switch).
    (record,) = ok_events(events, "Record the AZURE_* variable names the job's controller process sees")
    assert set(record["event_data"]["res"]["stdout_lines"]) == AWX_AZURE_RM_VARIABLES | {"AZURE_DISABLE_INSTANCE_DISCOVERY"}

    # The secret is in no job event and not in the output. ansible-runner keeps the job's
    # environment in two files of the private data dir, by design and readable by the owner only:
    # its input env/envvars and its record of the command, artifacts/<ident>/command.
    assert SECRET not in json.dumps(events) and SECRET not in output
    artifacts = "artifacts/%s/" % runner.config.ident
    assert os.listdir(private / artifacts / "job_events")
    assert files_containing(private, SECRET) == sorted([artifacts + "command", "env/envvars"])
    assert all((private / name).stat().st_mode & 0o077 == 0 for name in (artifacts + "command", "env/envvars"))


def _cleanup_playbook():
    """The clean-up playbook of docs/awx.md, as written there."""
    with open(os.path.join(ROOT, "docs", "awx.md"), encoding="utf-8") as stream:
        text = stream.read()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    (block,) = [block for block in blocks if "Close JIT access left open by cancelled or timed-out jobs" in block]
    return yaml.safe_load(block)


def test_cancelled_job_leaves_access_open_until_the_cleanup_closes_it(armsim, sshd, tmp_path, awx_process_env):
    """AWX cancels (and times out) a job through ansible-runner, which SIGKILLs the playbook's
    process group: neither ``always`` nor jit_guard runs, the allow rules stay until the request
    ends. docs/awx.md's clean-up playbook finds them (nsg_jit_facts) and closes them."""
    private, inventory, extravars = prepare_job(armsim, tmp_path, LONG_STEP)
    markers = [tmp_path / "markers" / ("%s.txt" % name) for name in HOST_NAMES]

    # Cancel once every host is configured, that is while the long step runs (AWX's cancel button).
    runner = run_job(armsim, sshd, private, inventory, extravars, cancel_callback=lambda: all(marker.exists() for marker in markers))
    output = stdout_of(runner)
    assert runner.status == "canceled", output[-5000:]
    assert "jit_guard" not in output  # SIGKILL: the callback never got to run

    left = jit_rules(armsim)
    assert sorted(rule["destination"] for rule in left) == PRIVATE_IPS
    assert all(rule["sources"] == ["127.0.0.1"] and rule["ports"] == ["22"] for rule in left), left
    assert not armsim.stats()["by_operation"].get("DELETE securityRules")

    # The clean-up job (run here with the same credential variables) closes exactly that access.
    denies = jit_rules(armsim, "deny")
    playbook = tmp_path / "cleanup.yml"
    playbook.write_text(yaml.safe_dump(_cleanup_playbook(), sort_keys=False))
    cleanup = run_playbook(armsim, str(playbook), extra_vars={"jit_cleanup_source_address_prefixes": ["127.0.0.1"]})
    assert cleanup.rc == 0, cleanup.stdout[-4000:] + cleanup.stderr[-2000:]
    closed = cleanup.result("Close that access (only rules admitting the AWX egress address)")
    assert sorted({item["vm_id"].lower() for item in closed["closed"]}) == sorted(vm_id(armsim, group, name).lower() for name, group in HOSTS)
    assert jit_rules(armsim) == []
    assert jit_rules(armsim, "deny") == denies
