"""Defender for Servers Plan 2 per subscription (issue 15): JIT exists only where it is enabled.

armsim serves two subscriptions of one tenant; the second has Defender for Servers off (Free). It
refuses JIT writes there (400 DefenderForServersPlan2Required). nsg_jit_facts reports the plan of
each subscription; the jit_fleet role checks it before any write, skips that subscription's VMs
with the reason and names it in the report; only jit_fleet_enable_defender_for_servers (billed per
server) turns Plan 2 on, and the report says so.
"""

import json
import os

from harness import run_module, run_playbook
from roles_support import PLAYBOOKS

SUB_A = "00000000-0000-0000-0000-000000000001"
SUB_B = "00000000-0000-0000-0000-0000000000b2"
PLAYBOOK = os.path.join(PLAYBOOKS, "enable_jit_fleet.yml")


def _group(name, prefix, vm):
    return {
        "name": name,
        "location": "westeurope",
        "network_security_groups": [{"name": "nsg-" + name}],
        "virtual_networks": [
            {"name": "vnet-" + name, "address_space": prefix + ".0.0/16", "subnets": [{"name": "default", "prefix": prefix + ".0.0/24", "nsg": "nsg-" + name}]}
        ],
        "virtual_machines": [{"name": vm, "os_type": "Linux"}],
    }


ARMSIM_SEED = {
    "subscription_id": SUB_A,
    "resource_groups": [_group("rg-a", "10.1", "a-1")],
    "extra_subscriptions": [{"subscription_id": SUB_B, "defender_for_servers": "Free", "resource_groups": [_group("rg-b", "10.2", "b-1")]}],
}


def vm_id(subscription, group, name):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (subscription, group, name)


def policies(armsim):
    state = armsim.state()
    return sorted(
        vm["id"].rsplit("/", 1)[1] for sub in [state, *state["extra_subscriptions"]] for p in sub["jit_policies"] for vm in p["properties"]["virtualMachines"]
    )


def fleet(armsim, tmp_path, **variables):
    extra = dict(jit_fleet_report_dir=str(tmp_path), jit_fleet_subscriptions=[SUB_A, SUB_B], **variables)
    run = run_playbook(armsim, PLAYBOOK, extra_vars=extra)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    with open(tmp_path / "jit_fleet_report.json", encoding="utf-8") as stream:
        return json.load(stream), (tmp_path / "jit_fleet_report.md").read_text()


def test_facts_report_the_plan_of_each_subscription(armsim):
    facts = run_module(armsim, "nsg_jit_facts", {"subscriptions": [SUB_A, SUB_B]})["ansible_facts"]["azure_jit"]
    assert facts["defender_for_servers"] == [
        {"subscription_id": SUB_A, "pricing_tier": "Standard", "sub_plan": "P2", "jit_available": True},
        {"subscription_id": SUB_B, "pricing_tier": "Free", "sub_plan": None, "jit_available": False},
    ]
    assert facts["summary"]["subscriptions_without_jit"] == [SUB_B]


def test_a_policy_write_without_the_plan_fails_cleanly_and_writes_nothing(armsim):
    result = run_module(armsim, "jit_policy", {"virtual_machines": [{"id": vm_id(SUB_B, "rg-b", "b-1")}], "ports": [{"number": 22}]}, expect_failure=True)
    assert "DefenderForServersPlan2Required" in result["msg"] and "Plan 2" in result["msg"]
    assert "Traceback" not in result["msg"]
    assert policies(armsim) == []


def test_the_fleet_role_skips_subscriptions_without_jit_and_says_so(armsim, tmp_path):
    report, markdown = fleet(armsim, tmp_path, jit_fleet_mode="enforce")
    assert policies(armsim) == ["a-1"]
    skipped = {vm["name"]: vm["reason"] for vm in report["skipped"]}
    assert skipped == {"b-1": "subscription %s has no Defender for Servers Plan 2: JIT is not available there" % SUB_B}
    assert report["defender_for_servers"]["without_jit"] == [SUB_B] and report["defender_for_servers"]["enabled_by_this_run"] == []
    assert "Subscription `%s` cannot have JIT" % SUB_B in markdown
    assert armsim.stats()["by_operation"].get("PUT pricings", 0) == 0  # never turned on unasked: it costs money


def test_the_fleet_role_turns_the_plan_on_only_when_told_and_the_report_says_it_costs(armsim, tmp_path):
    report, markdown = fleet(armsim, tmp_path, jit_fleet_mode="enforce", jit_fleet_enable_defender_for_servers=True)
    plan = armsim.state()["extra_subscriptions"][0]
    assert policies(armsim) == ["a-1", "b-1"]
    assert armsim.stats()["by_operation"]["PUT pricings"] == 1  # only the subscription that lacked it
    assert report["defender_for_servers"]["enabled_by_this_run"] == [SUB_B] and report["defender_for_servers"]["without_jit"] == []
    assert "Defender for Servers Plan 2 was turned on for subscription `%s` by this run: it is billed per server" % SUB_B in markdown
    assert plan["subscription_id"] == SUB_B
