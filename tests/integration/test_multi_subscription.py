"""One task over VMs in two subscriptions: jit_policy, jit_request (open and close), nsg_jit_facts
and jit_guard, against an armsim that serves two subscriptions of one tenant.

The subscription of each VM comes from its id; the configured subscription (AZURE_SUBSCRIPTION_ID)
is only the default for VMs named without one. Outcomes are asserted in both subscriptions'
state and in the per-operation counters: one policy PUT per policy, one initiate per policy.
"""

import json

from harness import run_playbook
from roles_support import PLAYBOOKS

SUB_A = "00000000-0000-0000-0000-000000000001"
SUB_B = "00000000-0000-0000-0000-0000000000b2"


def _group(name, location, prefix, vms):
    subnet = {"name": "default", "prefix": prefix + ".0.0/24", "nsg": "nsg-" + name}
    nics = [[{"subnet": "vnet-%s/default" % name, "private_ip": "%s.0.%d" % (prefix, 4 + index)}] for index in range(len(vms))]
    return {
        "name": name,
        "location": location,
        "network_security_groups": [{"name": "nsg-" + name, "rules": []}],
        "virtual_networks": [{"name": "vnet-" + name, "address_space": prefix + ".0.0/16", "subnets": [subnet]}],
        "virtual_machines": [{"name": vm, "os_type": "Linux", "nics": nic} for vm, nic in zip(vms, nics, strict=True)],
    }


ARMSIM_SEED = {
    "subscription_id": SUB_A,
    "subscription_name": "platform-prod",
    "resource_groups": [_group("rg-a", "westeurope", "10.1", ["a-1", "a-2"])],
    "extra_subscriptions": [
        {"subscription_id": SUB_B, "subscription_name": "platform-dev", "resource_groups": [_group("rg-b", "northeurope", "10.2", ["b-1", "b-2"])]},
    ],
}
ARMSIM_OPTIONS = {"apply_delay": 0.3}


def vm_id(subscription, group, name):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (subscription, group, name)


VMS = [{"id": vm_id(SUB_A, "rg-a", "a-1")}, {"id": vm_id(SUB_A, "rg-a", "a-2")}, {"id": vm_id(SUB_B, "rg-b", "b-1")}, {"id": vm_id(SUB_B, "rg-b", "b-2")}]


def states(armsim):
    state = armsim.state()
    return {SUB_A: state, **{extra["subscription_id"]: extra for extra in state["extra_subscriptions"]}}


def jit_rules(state, kind):
    """``kind``: ``_`` for deny rules, ``-`` for allow rules."""
    return sorted(
        (nsg["name"], rule["properties"]["destinationAddressPrefix"])
        for nsg in state["network_security_groups"]
        for rule in nsg["properties"]["securityRules"]
        if rule["name"].startswith("MicrosoftDefenderForCloud-JITRule" + kind)
    )


def play(*tasks):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def test_policy_request_and_facts_over_two_subscriptions(armsim):
    ports = [{"number": 22, "allowed_source_address_prefixes": ["203.0.113.7/32", "203.0.113.0/24"]}]  # the request's source is one of them
    policy = {"name": "policy", "jitaccess.azure.jit_policy": {"virtual_machines": VMS, "ports": ports}}
    run = run_playbook(armsim, play(policy, dict(policy, name="again")))
    assert run.rc == 0, run.stdout[-3000:]
    first, again = run.result("policy"), run.result("again")
    assert first["changed"] and not again["changed"]
    assert sorted(item["id"].split("/")[2] for item in first["policies"]) == [SUB_A, SUB_B]
    stats = armsim.stats()["by_operation"]
    assert stats["PUT jitNetworkAccessPolicies"] == 2  # one per policy, one policy per subscription
    by_sub = states(armsim)
    assert jit_rules(by_sub[SUB_A], "_") == [("nsg-rg-a", "10.1.0.4"), ("nsg-rg-a", "10.1.0.5")]
    assert jit_rules(by_sub[SUB_B], "_") == [("nsg-rg-b", "10.2.0.4"), ("nsg-rg-b", "10.2.0.5")]

    before = armsim.stats()["by_operation"].get("POST initiate", 0)
    request = {"virtual_machines": VMS, "ports": [22], "source_address_prefixes": ["203.0.113.7"], "duration": "10m"}
    facts = {"name": "facts", "jitaccess.azure.nsg_jit_facts": {"subscriptions": ["all"], "detail": "summary"}}
    run = run_playbook(
        armsim,
        play(
            {"name": "open", "jitaccess.azure.jit_request": request},
            facts,
            {"name": "close", "jitaccess.azure.jit_request": {"virtual_machines": VMS, "ports": [22], "state": "absent"}},
        ),
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert armsim.stats()["by_operation"]["POST initiate"] - before == 2  # one per policy
    assert len(run.result("open")["opened"]) == 4 and len(run.result("close")["closed"]) == 4
    fact = run.result("facts")["ansible_facts"]["azure_jit"]
    assert sorted(fact["subscription_ids"]) == [SUB_A, SUB_B]
    assert {vm["name"]: vm["subscription_id"] for vm in fact["virtual_machines"]} == {"a-1": SUB_A, "a-2": SUB_A, "b-1": SUB_B, "b-2": SUB_B}
    per_sub = fact["summary"]["subscriptions"]
    assert {sub: counts["jit_status"]["configured"] for sub, counts in per_sub.items()} == {SUB_A: 2, SUB_B: 2}
    assert all(counts["active_requests"] == 2 for counts in per_sub.values())
    by_sub = states(armsim)
    assert jit_rules(by_sub[SUB_A], "-") == [] and jit_rules(by_sub[SUB_B], "-") == []  # closed in both


def test_the_guard_closes_what_a_run_opened_in_every_subscription(armsim):
    policy = {"name": "policy", "jitaccess.azure.jit_policy": {"virtual_machines": VMS, "ports": [{"number": 22}]}}
    request = {"virtual_machines": VMS, "ports": [22], "source_address_prefixes": ["203.0.113.7"], "duration": "10m"}
    env = {"ANSIBLE_CALLBACKS_ENABLED": "record_results,jitaccess.azure.jit_guard"}
    run = run_playbook(armsim, play(policy, {"name": "open", "jitaccess.azure.jit_request": request}), env=env)
    assert run.rc == 0, run.stdout[-3000:]
    assert "jit_guard: all JIT access opened by this run is closed" in run.stdout
    by_sub = states(armsim)
    assert jit_rules(by_sub[SUB_A], "-") == [] and jit_rules(by_sub[SUB_B], "-") == []
    assert len(jit_rules(by_sub[SUB_B], "_")) == 2  # the deny rules stay


def test_vms_by_name_use_the_configured_subscription_and_unknown_ones_are_named(armsim):
    missing = vm_id(SUB_B, "rg-b", "ghost")
    task = {"name": "policy", "jitaccess.azure.jit_policy": {"virtual_machines": [{"name": "a-1", "resource_group": "rg-a"}, {"id": missing}]}}
    run = run_playbook(armsim, play(task))
    result = run.result("policy")
    assert result["failed"] and result["msg"] == "virtual machine(s) not found in subscription %s: %s" % (SUB_B, missing)
    assert armsim.stats()["writes"] == 0
    env = {"AZURE_SUBSCRIPTION_ID": None}  # VMs by id need no configured subscription
    run = run_playbook(armsim, play({"name": "policy", "jitaccess.azure.jit_policy": {"virtual_machines": VMS[2:]}}), env=env)
    assert run.result("policy")["changed"], run.stdout[-3000:]
    by_name = {"name": "by-name", "jitaccess.azure.jit_policy": {"virtual_machines": [{"name": "a-1", "resource_group": "rg-a"}]}}
    run = run_playbook(armsim, play(by_name), env=env)
    assert "needs a subscription: set subscription_id, or give the VM's id" in run.result("by-name")["msg"]


def test_fleet_rollout_over_every_subscription_reports_each(armsim, tmp_path):
    extra = {"jit_fleet_mode": "enforce", "jit_fleet_subscriptions": ["all"], "jit_fleet_report_dir": str(tmp_path)}
    run = run_playbook(armsim, PLAYBOOKS + "/enable_jit_fleet.yml", extra_vars=extra)
    assert run.rc == 0, run.stdout[-4000:]
    report = json.loads((tmp_path / "jit_fleet_report.json").read_text())
    assert sorted(report["subscription_ids"]) == [SUB_A, SUB_B]
    assert report["policies_written"] == 2 and armsim.stats()["by_operation"]["PUT jitNetworkAccessPolicies"] == 2
    by_sub = report["coverage_by_subscription"]
    assert {sub: (item["before"]["configured"], item["after"]["configured"], item["after"]["eligible"]) for sub, item in by_sub.items()} == {
        SUB_A: (0, 2, 2),
        SUB_B: (0, 2, 2),
    }
    assert sorted((vm["subscription_id"], vm["name"]) for vm in report["candidates"]) == [(SUB_A, "a-1"), (SUB_A, "a-2"), (SUB_B, "b-1"), (SUB_B, "b-2")]
    markdown = (tmp_path / "jit_fleet_report.md").read_text()
    assert "### Per subscription" in markdown and f"| {SUB_B} | 2 | 0 | 2 | 2 | 100.0% |" in markdown
    assert len(jit_rules(states(armsim)[SUB_B], "_")) == 2
