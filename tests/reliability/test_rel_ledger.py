"""The closing table cannot lie (issue 14, section 7): each "must be 0" row is computed from armsim's
state by a helper, and here each helper is shown to turn non-zero when the defect it guards against
is injected into a real armsim (a lost policy entry, a write that took effect, an allow rule left).
"""

import copy

from reltools import jit_rules, lost_entries, policies, state_changes

ARMSIM_SEED = "reliability.yaml"


def _any_policy_entry(state):
    for policy_id, entries in policies(state).items():
        for vm_key in entries:
            return policy_id, vm_key
    raise AssertionError("the seed has no JIT policy entry")


def test_entries_lost_counts_a_lost_entry(armsim):
    before = armsim.state()
    assert lost_entries(policies(before), policies(before)) == []
    policy_id, vm_key = _any_policy_entry(before)
    after = copy.deepcopy(policies(before))
    del after[policy_id][vm_key]  # the defect: another writer's entry dropped
    assert lost_entries(policies(before), after) == [(policy_id, vm_key)]
    changed = copy.deepcopy(policies(before))
    changed[policy_id][vm_key] = "different ports"
    assert len(lost_entries(policies(before), changed)) == 1
    assert lost_entries(policies(before), changed, touched=[vm_key]) == []


def test_rejected_writes_count_a_write_that_took_effect(armsim):
    before = armsim.state()
    assert state_changes(before, armsim.state()) == 0
    _credential, _security, network, _compute = armsim.sdk_clients()
    nsg = before["network_security_groups"][0]
    group = nsg["id"].split("/resourceGroups/")[1].split("/")[0]
    rule = {"protocol": "Tcp", "sourceAddressPrefix": "203.0.113.66", "sourcePortRange": "*", "destinationAddressPrefix": "*"}
    rule = {"properties": dict(rule, destinationPortRange="22", access="Allow", priority=150, direction="Inbound")}
    name = "MicrosoftDefenderForCloud-JITRule-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # the defect: an allow rule written
    network.security_rules.begin_create_or_update(group, nsg["name"], name, rule).result()
    after = armsim.state()
    assert state_changes(before, after) == 1
    assert [item["name"] for item in jit_rules(after) if item["sources"] == ["203.0.113.66"]] == [name]  # the orphan row's count
