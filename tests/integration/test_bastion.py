"""JIT through Azure Bastion (issue #18 §6): the ``bastion`` option of jit_policy and jit_request,
and nsg_jit_facts' ``bastion_only``, run through real ansible-playbook against armsim (hub and
spokes with peerings, seeds/bastion.yaml); outcomes asserted in armsim's state and counters."""

import pytest
from harness import run_module

ARMSIM_SEED = "bastion.yaml"
ARMSIM_OPTIONS = {"apply_delay": 0.5}
SUB = "00000000-0000-0000-0000-000000000001"
HUB_BASTION_PREFIX = "10.0.1.0/26"
BAS_HUB = f"/subscriptions/{SUB}/resourceGroups/rg-hub/providers/Microsoft.Network/bastionHosts/bas-hub"
BAS_HUB2 = f"/subscriptions/{SUB}/resourceGroups/rg-hub2/providers/Microsoft.Network/bastionHosts/bas-hub2"
JIT_ALLOW_PREFIX = "MicrosoftDefenderForCloud-JITRule-"


def vm(name, rg="rg-spoke"):
    return {"name": name, "resource_group": rg}


def policy_entries(state, rg="rg-spoke"):
    """{VM name: [(port, allowed source prefixes)]} of the ``default`` policy of ``rg`` in armsim."""
    for policy in state["jit_policies"]:
        if f"/resourceGroups/{rg}/".lower() in policy["id"].lower():
            return {
                entry["id"].rsplit("/", 1)[-1]: [
                    (port["number"], port.get("allowedSourceAddressPrefixes") or [port.get("allowedSourceAddressPrefix")]) for port in entry["ports"]
                ]
                for entry in policy["properties"]["virtualMachines"]
            }
    return {}


def jit_allow_rules(state, nsg_name):
    nsg = next(n for n in state["network_security_groups"] if n["name"] == nsg_name)
    return [rule["properties"] for rule in nsg["properties"]["securityRules"] if rule["name"].startswith(JIT_ALLOW_PREFIX)]


def fails_without_writes(armsim, module, args):
    """Run ``module`` expecting a clean failure; assert armsim saw no write. Returns the message."""
    before = armsim.state()
    result = run_module(armsim, module, args, expect_failure=True)
    assert "Traceback" not in result["msg"] and "Traceback" not in result.get("module_stderr", "")
    assert armsim.stats()["writes"] == 0
    assert armsim.state()["jit_policies"] == before["jit_policies"]
    return result["msg"]


def test_policy_and_request_with_bastion_auto_end_to_end(armsim):
    # check mode and diff: the Bastion subnet shows as allowed source, nothing is written
    preview = run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-1"), vm("app-2")], "bastion": "auto"}, check=True, diff=True)
    assert preview["changed"] is True and armsim.stats()["writes"] == 0
    assert HUB_BASTION_PREFIX in str(preview["diff"])

    armsim.reset_stats()
    result = run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-1"), vm("app-2")], "bastion": "auto"})
    assert result["changed"] is True
    assert policy_entries(armsim.state()) == {"app-1": [(22, [HUB_BASTION_PREFIX])], "app-2": [(22, [HUB_BASTION_PREFIX])]}
    stats = armsim.stats()
    assert stats["by_operation"].get("GET bastionHosts") == 1  # one list per subscription, not one per VM
    assert stats["writes"] == 1

    again = run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-1"), vm("app-2")], "bastion": "auto"})
    assert again["changed"] is False

    armsim.reset_stats()
    opened = run_module(armsim, "jit_request", {"virtual_machines": [vm("app-1")], "bastion": "auto", "duration": "30m"})
    assert opened["changed"] is True
    assert armsim.stats()["by_operation"].get("POST initiate") == 1
    rules = jit_allow_rules(armsim.state(), "nsg-spoke-a")
    assert [(r["sourceAddressPrefix"], r["destinationAddressPrefix"], r["destinationPortRange"]) for r in rules] == [(HUB_BASTION_PREFIX, "10.1.0.4", "22")]
    assert opened["virtual_machines"][0]["ports"][0]["source"] == HUB_BASTION_PREFIX

    # the same request again is already open for that source: no second initiate
    armsim.reset_stats()
    same = run_module(armsim, "jit_request", {"virtual_machines": [vm("app-1")], "bastion": "auto", "duration": "30m"})
    assert same["changed"] is False and armsim.stats()["writes"] == 0


def test_named_bastion_resolves_its_subnet(armsim):
    # app-b1's spoke peers with two hubs: a named Bastion settles it (by name, then by id: unchanged)
    result = run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-b1")], "bastion": {"name": "bas-hub", "resource_group": "rg-hub"}})
    assert result["changed"] is True
    assert policy_entries(armsim.state()) == {"app-b1": [(22, [HUB_BASTION_PREFIX])]}
    again = run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-b1")], "bastion": BAS_HUB})
    assert again["changed"] is False
    other = run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-b1")], "bastion": {"id": BAS_HUB2}})
    assert other["changed"] is True
    assert policy_entries(armsim.state()) == {"app-b1": [(22, ["10.5.1.0/26"])]}


@pytest.mark.parametrize("module", ["jit_policy", "jit_request"])
def test_no_bastion_reachable_fails_before_any_write(armsim, module):
    message = fails_without_writes(armsim, module, {"virtual_machines": [vm("half-1"), vm("lone-1", "rg-lone")], "bastion": "auto"})
    assert "no Azure Bastion can reach VM half-1" in message and "no Azure Bastion can reach VM lone-1" in message
    assert "Nothing was written" in message


def test_ambiguous_bastion_names_the_candidates(armsim):
    message = fails_without_writes(armsim, "jit_policy", {"virtual_machines": [vm("app-1"), vm("app-b1")], "bastion": "auto"})
    assert "more than one Azure Bastion can reach VM app-b1" in message
    assert BAS_HUB in message and BAS_HUB2 in message and "app-1" not in message


def test_bastion_that_does_not_exist_or_cannot_reach(armsim):
    message = fails_without_writes(armsim, "jit_policy", {"virtual_machines": [vm("app-1")], "bastion": {"name": "bas-nope", "resource_group": "rg-hub"}})
    assert "bastion host /subscriptions/%s/resourceGroups/rg-hub/providers/Microsoft.Network/bastionHosts/bas-nope does not exist" % SUB in message
    message = fails_without_writes(armsim, "jit_request", {"virtual_machines": [vm("guarded-1", "rg-guarded")], "bastion": BAS_HUB2})
    assert "Azure Bastion bas-hub2 cannot reach VM guarded-1" in message


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("jit_policy", {"ports": [{"number": 22, "allowed_source_address_prefixes": ["203.0.113.0/24"]}]}, "mutually exclusive"),
        ("jit_policy", {"bastion": "nearest"}, "bastion 'nearest' is not valid: expected 'auto'"),
        ("jit_policy", {"bastion": {"name": "bas-hub"}}, "is not valid: expected 'auto'"),
        ("jit_request", {"source_address_prefixes": ["203.0.113.7"]}, "bastion and source_address_prefixes are mutually exclusive"),
        ("jit_request", {"bastion": ["bas-hub"]}, "bastion ['bas-hub'] is not valid: expected 'auto'"),
    ],
)
def test_bad_bastion_options_fail_cleanly(armsim, module, args, expected):
    message = fails_without_writes(armsim, module, dict({"virtual_machines": [vm("app-1")], "bastion": "auto"}, **args))
    assert expected in message
    assert armsim.stats()["reads"] == 0  # refused before any read


def test_facts_mark_bastion_only_vms(armsim):
    def facts():
        result = run_module(armsim, "nsg_jit_facts", {})
        return result["ansible_facts"]["azure_jit"]

    before = facts()
    by_name = {entry["name"]: entry for entry in before["virtual_machines"]}
    assert {name for name, entry in by_name.items() if entry["bastion_only"]} == {"guarded-1"}
    assert by_name["guarded-1"]["bastion_hosts"] == [BAS_HUB]
    assert by_name["wide-1"]["bastion_hosts"] == [BAS_HUB]  # reachable, but its policy allows any source
    assert sorted(by_name["app-b1"]["bastion_hosts"]) == [BAS_HUB, BAS_HUB2]
    assert by_name["half-1"]["bastion_hosts"] == [] and by_name["lone-1"]["bastion_hosts"] == []
    assert before["summary"]["bastion_only_virtual_machines"] == 1
    assert armsim.stats()["by_operation"].get("GET bastionHosts") == 1

    # app-1 is reached through AllowVnetInBound until JIT with the Bastion source closes the rest
    run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-1")], "bastion": "auto"})
    after = facts()
    assert {entry["name"] for entry in after["virtual_machines"] if entry["bastion_only"]} == {"guarded-1", "app-1"}
    assert after["summary"]["bastion_only_virtual_machines"] == 2


def test_the_jit_access_role_opens_and_closes_for_the_bastion(armsim, tmp_path):
    """jit_access_bastion: the role's batch request goes out for the Bastion's subnet, and its close
    removes exactly that access."""
    from harness import run_playbook
    from roles_support import write_inventory

    run_module(armsim, "jit_policy", {"virtual_machines": [vm("app-1")], "bastion": "auto"})
    inventory = write_inventory(armsim, str(tmp_path / "inventory.ini"), [("app-1", "rg-spoke")], group="jit_targets")
    role = {"name": "jitaccess.azure.jit_access"}
    play = [
        {
            "name": "Through Bastion",
            "hosts": "jit_targets",
            "gather_facts": False,
            "vars": {"jit_access_bastion": "auto", "jit_access_ports": [22], "jit_access_duration": "30m", "jit_access_wait_for_port": False},
            "tasks": [
                {"name": "Open", "ansible.builtin.include_role": dict(role, tasks_from="open")},
                {"name": "Look at the rules", "ansible.builtin.set_fact": {"seen": "{{ jit_access_request.opened | map(attribute='source') | list }}"}},
                {"name": "Close", "ansible.builtin.include_role": dict(role, tasks_from="close")},
            ],
        }
    ]
    armsim.reset_stats()
    run = run_playbook(armsim, play, inventory=inventory)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("Look at the rules")["ansible_facts"]["seen"] == [HUB_BASTION_PREFIX]
    assert armsim.stats()["by_operation"].get("POST initiate") == 1
    assert jit_allow_rules(armsim.state(), "nsg-spoke-a") == []  # closed again
