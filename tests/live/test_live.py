"""Live tests: the modules against a real subscription (or anything that speaks ARM), configured
only through the environment - never armsim's admin API. See docs/live-testing.md.

    AZURE_SUBSCRIPTION_ID, AZURE_TENANT, AZURE_CLIENT_ID, AZURE_SECRET (or any auth the modules take)
    JITACCESS_LIVE_VMS      comma-separated ids of VMs the run may touch (each with an NSG)
    JITACCESS_LIVE_SOURCE   the source address to open for (default: the runner's, left to Azure)
    JITACCESS_LIVE_PORT     the port (default 22)

What it creates: a JIT policy entry for a named VM that is not under JIT yet (removed at the end)
and JIT allow rules through one request per run (closed at the end). Every request's justification
carries a unique prefix (jitaccess-live-<run id>), so a leftover is easy to find. Nothing else is
written: no VM, NSG or rule of anyone else is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid

import pytest
import yaml

VMS = [vm.strip() for vm in os.environ.get("JITACCESS_LIVE_VMS", "").split(",") if vm.strip()]
SOURCE = os.environ.get("JITACCESS_LIVE_SOURCE") or None
PORT = int(os.environ.get("JITACCESS_LIVE_PORT", "22"))
RUN_ID = "jitaccess-live-" + uuid.uuid4().hex[:8]

pytestmark = pytest.mark.skipif(not VMS, reason="set JITACCESS_LIVE_VMS (and AZURE_*) to run the live tests: see docs/live-testing.md")


def play(*tasks):
    """Run ``tasks`` on localhost with ansible-playbook; each task's registered result, by name."""
    content = "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (t["name"], t["register"]) for t in tasks)
    collect = {"name": "collect the results", "ansible.builtin.copy": {"content": content, "dest": "{{ results }}", "mode": "0600"}}
    with tempfile.TemporaryDirectory(prefix="jitaccess-live-") as tmp:
        playbook, results = os.path.join(tmp, "live.yml"), os.path.join(tmp, "results.json")
        with open(playbook, "w", encoding="utf-8") as stream:
            yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [*tasks, collect]}], stream)
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", playbook, "-e", "results=" + results]
        env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=1800, env=env)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        with open(results, encoding="utf-8") as stream:
            return json.load(stream)


def task(name, module, args):
    """A task of ``module`` registered as ``name`` (no spaces), with ``None`` arguments left out."""
    return {"name": name, "jitaccess.azure." + module: {key: value for key, value in args.items() if value is not None}, "register": name}


def facts_of(vm_ids):
    found = play(task("read", "nsg_jit_facts", {"virtual_machines": [{"id": vm} for vm in vm_ids]}))["read"]
    return {vm["id"].lower(): vm for vm in found["ansible_facts"]["azure_jit"]["virtual_machines"]}


def test_facts_read_every_named_vm_and_say_where_jit_exists():
    vms = facts_of(VMS)
    assert set(vms) == {vm.lower() for vm in VMS}
    for vm in vms.values():
        assert vm["jit_status"] in ("configured", "not_configured", "unsupported")


def test_put_under_jit_open_close_and_leave_everything_as_found():
    before = facts_of(VMS)
    supported = [vm for vm in VMS if before[vm.lower()]["jit_status"] != "unsupported"]
    assert supported, "none of JITACCESS_LIVE_VMS can have JIT (an NSG on its path is needed)"
    added = [vm for vm in supported if before[vm.lower()]["jit_status"] == "not_configured"]
    refs = [{"id": vm} for vm in supported]
    open_args = {"virtual_machines": refs, "ports": [PORT], "duration": "10m", "justification": RUN_ID}
    if SOURCE:
        open_args["source_address_prefixes"] = [SOURCE]
    tasks = []
    if added:
        tasks.append(task("put", "jit_policy", {"virtual_machines": [{"id": vm} for vm in added], "ports": [{"number": PORT}]}))
    tasks += [
        task("open", "jit_request", open_args),
        task(
            "close", "jit_request", {"virtual_machines": refs, "ports": [PORT], "state": "absent", **({"source_address_prefixes": [SOURCE]} if SOURCE else {})}
        ),
    ]
    if added:
        tasks.append(task("take_out", "jit_policy", {"virtual_machines": [{"id": vm} for vm in added], "state": "absent"}))
    results = play(*tasks)
    opened = results["open"]
    assert all(port["open"] for vm in opened["virtual_machines"] for port in vm["ports"]), opened
    assert all(port["action"] in ("closed", "not_open") for vm in results["close"]["virtual_machines"] for port in vm["ports"])
    after = facts_of(VMS)
    for vm in VMS:
        assert after[vm.lower()]["jit_status"] == before[vm.lower()]["jit_status"], vm
        for entry in after[vm.lower()]["exposure"]:
            assert not entry.get("open_by_jit_request"), (vm, entry)
