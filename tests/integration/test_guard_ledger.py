"""Property (issue 14, section 1): whatever sequence of opens and closes a guarded run makes - with
and without per-VM port overrides, waiting or not, with any apply delay - when it ends, armsim has
no JIT allow rule the run created, and jit_guard's last line says so truthfully.

Each example is one real ansible-playbook run with jit_guard enabled. After it, the test waits on a
condition (armsim has no initiated request left to apply) rather than a sleep, then reads armsim.
"""

import time

from harness import run_playbook
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

SUB = "00000000-0000-0000-0000-000000000001"
VMS = ("app-1", "app-2", "app-3")
PORTS = (22, 8022)
SOURCE = "203.0.113.50"


def _nsgs():
    return [{"name": "nsg-subnet", "rules": []}, *({"name": "nsg-%s" % vm, "rules": []} for vm in VMS)]


ARMSIM_SEED = {
    "subscription_id": SUB,
    "resource_groups": [
        {
            "name": "rg-ledger",
            "network_security_groups": _nsgs(),
            "virtual_networks": [{"name": "vnet", "address_space": "10.8.0.0/16", "subnets": [{"name": "apps", "prefix": "10.8.0.0/24", "nsg": "nsg-subnet"}]}],
            # two NSGs on every path: the subnet's (shared) and the VM's own NIC NSG
            "virtual_machines": [{"name": vm, "nics": [{"subnet": "vnet/apps", "nsg": "nsg-%s" % vm}]} for vm in VMS],
        }
    ],
    "jit_policies": [
        {
            "name": "default",
            "resource_group": "rg-ledger",
            "virtual_machines": [{"name": vm, "resource_group": "rg-ledger", "ports": list(PORTS)} for vm in VMS],
        }
    ],
}
ARMSIM_OPTIONS = {"apply_delay": 0.0}

vm_sets = st.sets(st.sampled_from(VMS), min_size=1, max_size=3).map(sorted)
port_sets = st.one_of(st.none(), st.sets(st.sampled_from(PORTS), min_size=1).map(sorted))
open_step = st.fixed_dictionaries({"kind": st.just("open"), "vms": vm_sets, "ports": port_sets, "wait": st.booleans()})
close_step = st.fixed_dictionaries(
    {
        "kind": st.just("close"),
        "vms": vm_sets,
        "ports": port_sets,
        "per_vm": st.dictionaries(st.sampled_from(VMS), st.sets(st.sampled_from(PORTS), min_size=1).map(sorted)),
        "wait": st.booleans(),
    }
)
runs = st.lists(st.one_of(open_step, close_step), min_size=1, max_size=5)


def task(index, step):
    vms = []
    for name in step["vms"]:
        entry = {"name": name, "resource_group": "rg-ledger"}
        if step["kind"] == "close" and name in step["per_vm"]:
            entry["ports"] = step["per_vm"][name]  # a per-VM override, as a close task may carry
        vms.append(entry)
    args = {"virtual_machines": vms, "wait": step["wait"], "wait_timeout": 60}
    if step["ports"]:
        args["ports"] = step["ports"]
    if step["kind"] == "open":
        args.update(source_address_prefixes=[SOURCE], duration="PT1H")
    else:
        args["state"] = "absent"
    return {"name": "step %d %s" % (index, step["kind"]), "jitaccess.azure.jit_request": args}


def allow_rules(armsim):
    return sorted(
        (nsg["name"], rule["name"])
        for nsg in armsim.state()["network_security_groups"]
        for rule in nsg["properties"]["securityRules"]
        if rule["name"].startswith("MicrosoftDefenderForCloud-JITRule-")
    )


def wait_for_no_apply_due(armsim, timeout=60):
    deadline = time.monotonic() + timeout
    while armsim.admin("GET", "/applies")["due"]:
        assert time.monotonic() < deadline, "armsim still has requests to apply"
        time.sleep(0.05)


# Each example is a playbook run: a few, derandomised (the same in every CI run), and no shrinking,
# which would replay runs for many minutes; a failure prints its whole example instead.
@settings(max_examples=8, derandomize=True, deadline=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(steps=runs, apply_delay=st.sampled_from([0.0, 0.4, 1.2]))
# The two ways today's defects were seen, always run: a close with a per-VM override closes port 22
# only (the guard forgot 8022 too); a close right after an open that did not wait (not applied yet).
@example(
    steps=[
        {"kind": "open", "vms": ["app-1"], "ports": [22, 8022], "wait": True},
        {"kind": "close", "vms": ["app-1"], "ports": None, "per_vm": {"app-1": [22]}, "wait": True},
    ],
    apply_delay=0.0,
)
@example(
    steps=[
        {"kind": "open", "vms": ["app-1", "app-2"], "ports": [22], "wait": False},
        {"kind": "close", "vms": ["app-1", "app-2"], "ports": [22], "per_vm": {}, "wait": True},
    ],
    apply_delay=1.2,
)
def test_a_guarded_run_leaves_no_allow_rule_it_created(armsim_server, steps, apply_delay):
    armsim = armsim_server
    armsim.reset()
    armsim.config(apply_delay=apply_delay)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task(index, step) for index, step in enumerate(steps)]}]
    run = run_playbook(armsim, play, env={"ANSIBLE_CALLBACKS_ENABLED": "record_results,jitaccess.azure.jit_guard"})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    wait_for_no_apply_due(armsim)  # anything initiated and still to come is there now
    guard_lines = [line for line in run.stdout.splitlines() if line.startswith("jit_guard:")]
    left = allow_rules(armsim)
    assert left == [], "allow rules left after the run: %s\nsteps: %s\nguard: %s" % (left, steps, guard_lines)
    opened = any(step["kind"] == "open" for step in steps)
    if opened and guard_lines:
        assert "may still be open" not in guard_lines[-1] and "could not close" not in guard_lines[-1], guard_lines
        assert guard_lines[-1] in (
            "jit_guard: all JIT access opened by this run is closed",
            "jit_guard: nothing was still open (closed earlier or expired)",
        ) or guard_lines[-1].startswith("jit_guard: the playbook closed every JIT access it opened"), guard_lines
