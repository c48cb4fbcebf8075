"""jit_request against armsim: real ansible-playbook runs; outcomes asserted in armsim's state and counters.

armsim applies the allow rules 1.5 s after each initiate (ARMSIM_OPTIONS), so every "open" also
proves the module waits: the rules are asserted right after the run returns.
"""

import os
import threading
import time

import pytest
import yaml
from harness import run_playbook
from roles_support import gate_open

from armsim.model import stable_uuid

SEED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "jit_request.yaml")
SUB = "00000000-0000-0000-0000-000000000001"
MODULE = "jitaccess.azure.jit_request"
JIT_ALLOW_PREFIX = "MicrosoftDefenderForCloud-JITRule-"
JIT_DENY_PREFIX = "MicrosoftDefenderForCloud-JITRule_"
FLEET = {"rg-fleet-a": ("westeurope", 14), "rg-fleet-b": ("westeurope", 13), "rg-fleet-c": ("northeurope", 13)}


def _seed():
    """The YAML seed plus a 40-VM fleet in 3 resource groups (3 policies, one subnet NSG each)."""
    with open(SEED_FILE, encoding="utf-8") as stream:
        seed = yaml.safe_load(stream)
    for index, (group, (location, count)) in enumerate(FLEET.items()):
        letter = group[-1]
        seed["resource_groups"].append(
            {
                "name": group,
                "location": location,
                "network_security_groups": [{"name": "nsg-fleet-" + letter, "rules": []}],
                "virtual_networks": [
                    {
                        "name": "vnet-" + letter,
                        "address_space": "10.%d.0.0/16" % (20 + index),
                        "subnets": [{"name": "default", "prefix": "10.%d.0.0/24" % (20 + index), "nsg": "nsg-fleet-" + letter}],
                    }
                ],
                "virtual_machines": [{"name": "%s-%02d" % (letter, n), "os_type": "Linux"} for n in range(count)],
            }
        )
        seed["jit_policies"].append(
            {
                "name": "default",
                "resource_group": group,
                "location": location,
                "virtual_machines": [{"name": "%s-%02d" % (letter, n), "ports": [22]} for n in range(count)],
            }
        )
    # Two groups whose VMs each have their own NIC NSG: 14 NSGs on the paths, in 2 resource groups.
    for index, letter in enumerate("de"):
        group = "rg-nics-" + letter
        names = ["%s-%02d" % (letter, n) for n in range(NIC_NSG_VMS)]
        seed["resource_groups"].append(
            {
                "name": group,
                "location": "westeurope",
                "network_security_groups": [{"name": "nsg-nics-" + letter, "rules": []}] + [{"name": name + "-nsg", "rules": []} for name in names],
                "virtual_networks": [
                    {
                        "name": "vnet-" + letter,
                        "address_space": "10.%d.0.0/16" % (30 + index),
                        "subnets": [{"name": "default", "prefix": "10.%d.0.0/24" % (30 + index), "nsg": "nsg-nics-" + letter}],
                    }
                ],
                "virtual_machines": [
                    {"name": name, "os_type": "Linux", "nics": [{"subnet": "vnet-%s/default" % letter, "nsg": name + "-nsg"}]} for name in names
                ],
            }
        )
        seed["jit_policies"].append(
            {"name": "default", "resource_group": group, "location": "westeurope", "virtual_machines": [{"name": name, "ports": [22]} for name in names]}
        )
    return seed


NIC_NSG_VMS = 6
ARMSIM_SEED = _seed()
ARMSIM_OPTIONS = {"apply_delay": 1.5}
APPLY_WINDOW = 120  # _request.APPLY_WINDOW_SECONDS


# -- helpers --------------------------------------------------------------------------------------


def vm_ref(name, group="rg-jit"):
    return {"name": name, "resource_group": group}


def vm_id(name, group="rg-jit"):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (SUB, group, name)


def task(name, args, **extra):
    return dict({"name": name, MODULE: args}, **extra)


def play(*tasks):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def run(armsim, *tasks, **kwargs):
    result = run_playbook(armsim, play(*tasks), **kwargs)
    return result


def ok(run_result, name):
    result = run_result.result(name)
    assert not result.get("failed"), "task %r failed: %s\n%s\n%s" % (name, result.get("msg"), run_result.stdout[-3000:], run_result.stderr[-3000:])
    return result


def nsg(state, name):
    return next(item for item in state["network_security_groups"] if item["name"] == name)


def rules(state, nsg_name):
    return {rule["name"]: rule["properties"] for rule in nsg(state, nsg_name)["properties"].get("securityRules", [])}


def allow_rules(state, nsg_name, destination=None):
    found = {}
    for name, props in rules(state, nsg_name).items():
        if not name.startswith(JIT_ALLOW_PREFIX):
            continue
        dests = props.get("destinationAddressPrefixes") or [props.get("destinationAddressPrefix")]
        if destination is None or destination in dests:
            found[name] = props
    return found


def sources(props):
    return props.get("sourceAddressPrefixes") or [props.get("sourceAddressPrefix")]


def policy(state, group="rg-jit"):
    return next(item for item in state["jit_policies"] if item["id"].split("/")[4] == group)


def request_ports(state, name, port, group="rg-jit"):
    """Every request record for a VM port, oldest first: (request, port entry)."""
    found = []
    for request in policy(state, group)["properties"]["requests"]:
        for vm in request["virtualMachines"]:
            if vm["id"].lower() == vm_id(name, group).lower():
                found += [(request, entry) for entry in vm["ports"] if entry["number"] == port]
    return found


def ops(armsim):
    return armsim.stats()["by_operation"]


# -- open ---------------------------------------------------------------------------------------


def test_open_wait_idempotent_force_supersedes(armsim):
    args = {"virtual_machines": [vm_ref("both-1")], "ports": [22], "source_address_prefixes": ["203.0.113.7"], "duration": "30m", "justification": "CHG-1"}
    before = rules(armsim.state(), "nsg-subnet")
    result = run(armsim, task("open", args), task("again", args), task("force", dict(args, force=True)))
    first, again, forced = ok(result, "open"), ok(result, "again"), ok(result, "force")

    # One initiate for the first run, none for the second, one for force: 2 writes in all.
    stats = armsim.stats()
    assert stats["by_operation"].get("POST initiate") == 2
    assert stats["writes"] == 2
    assert first["changed"] is True and again["changed"] is False and forced["changed"] is True
    assert again["opened"] == [] and again["initiated"] == []
    assert again["virtual_machines"][0]["ports"][0]["action"] == "already_open"

    # The first run returned only once the allow rules were on both NSGs of the path.
    port = first["virtual_machines"][0]["ports"][0]
    assert port["open"] is True and port["action"] == "opened" and port["source"] == "203.0.113.7" and port["status"] == "Initiated"
    assert sorted(rule["nsg_id"].rsplit("/", 1)[1] for rule in port["access"]) == ["nsg-nic", "nsg-subnet"]
    assert first["expires_at"] == port["end_time_utc"]
    opened = first["opened"]
    assert len(opened) == 1 and opened[0]["vm_id"].lower() == vm_id("both-1").lower() and opened[0]["port"] == 22
    assert opened[0]["private_ips"] == ["10.10.0.4"] and len(opened[0]["nsg_ids"]) == 2 and len(opened[0]["nsg_rules"]) == 2
    first_rule_names = {rule["name"] for rule in opened[0]["nsg_rules"]}

    state = armsim.state()
    for nsg_name in ("nsg-subnet", "nsg-nic"):
        current = allow_rules(state, nsg_name, "10.10.0.4")
        assert len(current) == 1, current
        name, props = next(iter(current.items()))
        # force superseded the first request: its rules were replaced by new ones
        assert name not in first_rule_names
        assert sources(props) == ["203.0.113.7"] and props["destinationPortRange"] == "22" and props["access"] == "Allow"
        assert props["direction"] == "Inbound" and props["priority"] == 100
        assert "initiation request for policy 'default' of VM 'both-1'" in props["description"]
    assert {rule["name"] for rule in forced["opened"][0]["nsg_rules"]} == set(allow_rules(state, "nsg-subnet")) | set(allow_rules(state, "nsg-nic"))
    # Non-JIT rules untouched.
    subnet_rules = rules(state, "nsg-subnet")
    for name in ("AllowHttps", "DenyTelnet"):
        assert subnet_rules[name] == before[name]

    records = request_ports(state, "both-1", 22)
    assert len(records) == 2
    (old_request, old_port), (new_request, new_port) = records
    assert (old_port["status"], old_port["statusReason"]) == ("Revoked", "NewerRequestInitiated")
    assert (new_port["status"], new_port["statusReason"]) == ("Initiated", "UserRequested")
    assert new_port["allowedSourceAddressPrefix"] == "203.0.113.7"
    assert new_request["justification"] == "CHG-1" and new_request["requestor"] == stable_uuid("principal", armsim.info["client_id"])


def test_check_mode_then_nic_only_subnet_only_and_windows_ports(armsim):
    args = {"virtual_machines": [vm_ref("nic-1"), vm_ref("sub-1"), vm_ref("win-1")], "duration": "PT1H"}
    result = run(armsim, task("plan", args, check_mode=True), task("open", args))
    plan, opened = ok(result, "plan"), ok(result, "open")

    assert plan["changed"] is True
    assert sorted((item["vm_name"], item["port"]) for item in plan["opened"]) == [
        ("nic-1", 22),
        ("sub-1", 22),
        ("win-1", 3389),
        ("win-1", 5985),
        ("win-1", 5986),
    ]
    assert {port["action"] for vm in plan["virtual_machines"] for port in vm["ports"]} == {"would_open"}
    assert len(plan["initiated"]) == 1
    # All three VMs are in one policy: exactly one initiate (the check run made none).
    assert ops(armsim).get("POST initiate") == 1
    assert armsim.stats()["writes"] == 1

    state = armsim.state()
    assert list(allow_rules(state, "nsg-nic-only")) and all(p["destinationAddressPrefix"] == "10.10.1.4" for p in allow_rules(state, "nsg-nic-only").values())
    assert len(allow_rules(state, "nsg-subnet-only", "10.10.2.4")) == 1
    win_rules = allow_rules(state, "nsg-subnet", "10.10.0.5")
    assert sorted(p["destinationPortRange"] for p in win_rules.values()) == ["3389", "5985", "5986"]
    # No source given: the service used the caller's address, and the module reports it.
    assert {tuple(sources(p)) for p in win_rules.values()} == {("127.0.0.1",)}
    assert {port["source"] for vm in opened["virtual_machines"] for port in vm["ports"]} == {"127.0.0.1"}
    by_vm = {vm["name"]: vm for vm in opened["virtual_machines"]}
    assert [rule["nsg_id"].rsplit("/", 1)[1] for rule in by_vm["nic-1"]["ports"][0]["access"]] == ["nsg-nic-only"]
    assert [rule["nsg_id"].rsplit("/", 1)[1] for rule in by_vm["sub-1"]["ports"][0]["access"]] == ["nsg-subnet-only"]
    # Nothing for VMs that were not named.
    assert allow_rules(state, "nsg-subnet", "10.10.0.4") == {} and allow_rules(state, "nsg-nic") == {}


def test_forty_vms_three_policies_three_initiates(armsim):
    vms = [vm_ref("%s-%02d" % (group[-1], n), group) for group, (dummy, count) in FLEET.items() for n in range(count)]
    result = run(armsim, task("open", {"virtual_machines": vms, "ports": [22], "source_address_prefixes": ["198.51.100.10"], "duration": "15m"}))
    opened = ok(result, "open")
    stats = armsim.stats()
    assert stats["by_operation"]["POST initiate"] == 3
    assert stats["writes"] == 3
    # NSG reads: one inventory list plus, per polling round, one GET per NSG still waiting (3 NSGs):
    # bounded by rounds, independent of the 40 VMs.
    nsg_reads = stats["by_operation"]["GET networkSecurityGroups"]
    assert 1 + 3 <= nsg_reads <= 1 + 3 * 8, nsg_reads
    assert len(opened["opened"]) == 40 and len(opened["initiated"]) == 3
    state = armsim.state()
    for group in FLEET:
        found = allow_rules(state, "nsg-fleet-" + group[-1])
        assert len(found) == FLEET[group][1]
        assert {tuple(sources(p)) for p in found.values()} == {("198.51.100.10",)}


def test_many_nsgs_in_few_resource_groups_are_polled_with_one_list_per_group(armsim):
    """14 NSGs on the paths (more than the 10 read one GET each), in 2 resource groups: each
    polling round lists those 2 groups' NSGs (side by side), never the whole subscription again."""
    vms = [vm_ref("%s-%02d" % (letter, n), "rg-nics-" + letter) for letter in "de" for n in range(NIC_NSG_VMS)]
    armsim.reset_stats()
    result = run(armsim, task("open", {"virtual_machines": vms, "ports": [22], "source_address_prefixes": ["198.51.100.10"], "duration": "15m"}))
    opened = ok(result, "open")
    assert len(opened["opened"]) == 2 * NIC_NSG_VMS and all(port["open"] for vm in opened["virtual_machines"] for port in vm["ports"])
    nsg_lists = [entry["path"] for entry in armsim.requests() if entry["method"] == "GET" and entry["path"].lower().endswith("/networksecuritygroups")]
    subscription_wide = "/subscriptions/%s/providers/Microsoft.Network/networkSecurityGroups" % SUB
    per_group = ["/subscriptions/%s/resourceGroups/rg-nics-%s/providers/Microsoft.Network/networkSecurityGroups" % (SUB, letter) for letter in "de"]
    assert nsg_lists[0] == subscription_wide and subscription_wide not in nsg_lists[1:], nsg_lists  # the inventory, once
    rounds = nsg_lists[1:]
    assert rounds and sorted(set(rounds)) == per_group and rounds.count(per_group[0]) == rounds.count(per_group[1]), rounds
    state = armsim.state()
    for name in ("d-00", "e-05"):  # the rules are on the subnet NSG and the VM's own NIC NSG
        assert len(allow_rules(state, name + "-nsg")) == 1


def test_a_refused_initiate_reports_what_the_other_policies_opened(armsim):
    """The three initiates go side by side. One refused: the failure names it, reports in
    ``opened`` exactly what the others opened (so that it can be closed), and nothing else."""
    refused = sorted(FLEET)[1]
    armsim.fault(method="POST", path_contains="resourceGroups/%s/" % refused, status=403, code="AuthorizationFailed", message="No initiate here.")
    vms = [vm_ref("%s-%02d" % (group[-1], n), group) for group, (dummy, count) in FLEET.items() for n in range(count)]
    args = {"virtual_machines": vms, "ports": [22], "source_address_prefixes": ["198.51.100.10"], "duration": "15m"}
    result = run(armsim, task("open", args, ignore_errors=True))
    failed = result.result("open")
    assert failed.get("failed") and "AuthorizationFailed" in failed["msg"] and refused in failed["msg"], failed
    assert "Traceback" not in failed["msg"]
    opened_groups = {item["vm_id"].split("/")[4] for item in failed["opened"]}
    assert refused not in opened_groups
    state = armsim.state()
    requested = {group for group in FLEET if policy(state, group)["properties"].get("requests")}
    assert opened_groups == requested, (opened_groups, requested)
    assert failed["changed"] is bool(opened_groups)
    assert len(failed["opened"]) == sum(FLEET[group][1] for group in opened_groups)


# -- close --------------------------------------------------------------------------------------


def test_close_removes_exactly_the_allow_rules(armsim):
    both, bystander = vm_ref("both-1"), vm_ref("bystander-1")
    source = ["203.0.113.7"]
    seed_state = {name: rules(armsim.state(), name) for name in ("nsg-subnet", "nsg-nic")}
    result = run(
        armsim,
        task("open", {"virtual_machines": [both, bystander], "ports": [22], "source_address_prefixes": source, "duration": "1h"}),
        task("close check", {"virtual_machines": [both], "state": "absent"}, check_mode=True),
        task("close other source", {"virtual_machines": [both], "source_address_prefixes": ["198.51.100.1"], "state": "absent"}),
        task("close", {"virtual_machines": [both], "ports": [22], "source_address_prefixes": source, "state": "absent"}),
    )
    # Within two minutes of its initiate a request without rules may still be applied (a close
    # would wait for its rules); past that window, a request without rules has none to come.
    armsim.advance(APPLY_WINDOW + 1)
    again_run = run(armsim, task("close again", {"virtual_machines": [both], "state": "absent"}))
    opened = ok(result, "open")
    planned, other, closed, again = ok(result, "close check"), ok(result, "close other source"), ok(result, "close"), ok(again_run, "close again")
    before_close = {rule["name"] for item in opened["opened"] if item["vm_name"] == "both-1" for rule in item["nsg_rules"]}
    assert len(before_close) == 2

    assert planned["changed"] is True and planned["closed"][0]["port"] == 22
    assert {rule["name"] for rule in planned["closed"][0]["nsg_rules"]} == before_close
    assert other["changed"] is False and other["closed"] == []
    assert closed["changed"] is True and {rule["name"] for rule in closed["closed"][0]["nsg_rules"]} == before_close
    assert closed["virtual_machines"][0]["ports"][0]["action"] == "closed" and closed["virtual_machines"][0]["ports"][0]["open"] is False
    assert again["changed"] is False and again["closed"] == []
    assert again["virtual_machines"][0]["ports"][0]["action"] == "not_open"

    # 1 initiate + 2 deletes (one per NSG on both-1's path); check mode and the no-op closes wrote nothing.
    stats = armsim.stats()
    assert stats["by_operation"].get("DELETE securityRules") == 2
    assert stats["writes"] == 3

    state = armsim.state()
    for nsg_name in ("nsg-subnet", "nsg-nic"):
        current = rules(state, nsg_name)
        assert not set(current) & before_close
        assert allow_rules(state, nsg_name, "10.10.0.4") == {}
        # bystander-1's access is intact
        assert len(allow_rules(state, nsg_name, "10.10.0.7")) == 1
        # the JIT deny rules and the non-JIT rules are all still there
        denies = [name for name in current if name.startswith(JIT_DENY_PREFIX)]
        assert len(denies) == len([name for name in seed_state[nsg_name] if name.startswith(JIT_DENY_PREFIX)]) and denies
        for name in seed_state[nsg_name]:
            if not name.startswith(JIT_ALLOW_PREFIX):
                assert current[name] == seed_state[nsg_name][name]
    # Azure keeps the request record with its original end time: there is no revoke API.
    ((dummy, record),) = request_ports(state, "both-1", 22)
    assert record["status"] == "Initiated" and record["endTimeUtc"].startswith(opened["virtual_machines"][0]["ports"][0]["end_time_utc"][:19])


def test_close_right_after_an_open_that_did_not_wait_deletes_the_rules_as_they_appear(armsim):
    """A request initiated but not applied yet is pending, never "not open": the close waits for its
    rules and deletes them. armsim holds the apply until the close is under way (a barrier, not a delay)."""
    both = vm_ref("both-1")
    armsim.config(apply_hold=True)
    try:
        first = run(
            armsim,
            task("open", {"virtual_machines": [both], "ports": [22], "source_address_prefixes": ["203.0.113.7"], "wait": False}),
            task("peek", {"virtual_machines": [both], "ports": [22], "state": "absent", "wait": False}),
        )
        ok(first, "open")
        peek = ok(first, "peek")
        assert peek["virtual_machines"][0]["ports"][0]["action"] == "pending" and peek["changed"] is False
        policy_lists = sum(1 for item in armsim.requests() if item["operation"] == "GET jitNetworkAccessPolicies")
        outcome = {}
        closer = threading.Thread(target=lambda: outcome.update(run=run(armsim, task("close", {"virtual_machines": [both], "ports": [22], "state": "absent"}))))
        closer.start()
        deadline = time.monotonic() + 120
        while sum(1 for item in armsim.requests() if item["operation"] == "GET jitNetworkAccessPolicies") == policy_lists:
            assert time.monotonic() < deadline and closer.is_alive(), "the close never read the policies"
            time.sleep(0.05)
        assert armsim.admin("POST", "/apply")["applied"] == 1  # the rules appear while the close runs
        closer.join(300)
    finally:
        armsim.config(apply_hold=False)
    closed = ok(outcome["run"], "close")
    assert closed["changed"] is True and closed["virtual_machines"][0]["ports"][0]["action"] == "closed"
    assert {rule["nsg_id"].rsplit("/", 1)[1] for rule in closed["closed"][0]["nsg_rules"]} == {"nsg-subnet", "nsg-nic"}
    state = armsim.state()
    for nsg_name in ("nsg-subnet", "nsg-nic"):
        assert allow_rules(state, nsg_name, "10.10.0.4") == {}
    assert armsim.stats()["by_operation"].get("DELETE securityRules") == 2


# -- data plane, expiry -------------------------------------------------------------------------


def test_data_plane_gate_follows_open_and_close(armsim):
    gate = armsim.gates()["both-1:22"]["listen_port"]
    assert gate_open(gate) is False
    args = {"virtual_machines": [vm_ref("both-1")], "ports": [22], "duration": "10m"}
    result = run(armsim, task("open", args), task("open again", args))
    assert ok(result, "open")["changed"] is True
    # Source left to the service (the caller's address): the same principal's request is recognised.
    assert ok(result, "open again")["changed"] is False
    assert ops(armsim)["POST initiate"] == 1
    assert gate_open(gate) is True
    result = run(armsim, task("close", dict(args, state="absent")))
    assert ok(result, "close")["changed"] is True
    assert gate_open(gate) is False


def test_expiry_removes_rules_and_a_new_open_initiates(armsim):
    args = {"virtual_machines": [vm_ref("sub-1")], "source_address_prefixes": ["203.0.113.7"], "duration": "10m"}
    ok(run(armsim, task("open", args)), "open")
    assert len(allow_rules(armsim.state(), "nsg-subnet-only")) == 1
    armsim.advance(11 * 60)
    state = armsim.state()
    assert allow_rules(state, "nsg-subnet-only") == {}
    ((dummy, record),) = request_ports(state, "sub-1", 22)
    assert (record["status"], record["statusReason"]) == ("Revoked", "Expired")
    reopened = ok(run(armsim, task("open", args)), "open")
    assert reopened["changed"] is True and ops(armsim)["POST initiate"] == 2
    assert len(allow_rules(armsim.state(), "nsg-subnet-only")) == 1


# -- refusals, timeouts, faults -----------------------------------------------------------------


def test_refusals_change_nothing(armsim):
    """Each refusal in a real run (0.0.0.0/0 and Any behave like * and Internet: see the unit tests)."""
    both = [vm_ref("both-1")]
    restricted = [vm_ref("restricted-1")]
    cases = {
        "no policy": ({"virtual_machines": [vm_ref("nopolicy-1")]}, ["nopolicy-1", "in no JIT policy", "jitaccess.azure.jit_policy"]),
        "unknown vm": ({"virtual_machines": [vm_ref("ghost-1")]}, ["ghost-1", "not found"]),
        "port not in policy": ({"virtual_machines": both, "ports": [3389]}, ["port 3389", "allowed ports 22"]),
        "duration over max": ({"virtual_machines": restricted, "duration": "3h"}, ["out of range", "PT2H"]),
        "source outside": ({"virtual_machines": restricted, "source_address_prefixes": ["198.51.100.1"]}, ["198.51.100.1", "203.0.113.0/24"]),
        "ipv6": ({"virtual_machines": both, "source_address_prefixes": ["2001:db8::1"]}, ["2001:db8::1", "IPv6"]),
        "star": ({"virtual_machines": both, "source_address_prefixes": ["*"]}, ["'*'", "allow_any_source"]),
        "internet": ({"virtual_machines": both, "source_address_prefixes": ["Internet"]}, ["Internet", "allow_any_source"]),
    }
    result = run(armsim, *[task(name, args, ignore_errors=True) for name, (args, dummy) in cases.items()])
    for name, (_args, fragments) in cases.items():
        outcome = result.result(name)
        assert outcome.get("failed") is True, (name, outcome)
        for fragment in fragments:
            assert fragment in outcome["msg"], (name, fragment, outcome["msg"])
        assert "Traceback" not in outcome.get("module_stderr", "")
    assert armsim.stats()["writes"] == 0


@pytest.mark.parametrize("rule", ["exact", "subset"])
def test_a_source_inside_the_policy_prefix_works_whichever_rule_azure_applies(armsim, rule):
    """Whether Azure takes a source merely inside a policy prefix is not settled (armsim can do
    both): the collection never relies on it. Without use_policy_source it refuses before any
    write, naming the allowed prefixes; with it, it requests the policy's prefix - under both."""
    armsim.config(initiate_source_rule=rule)
    restricted = [vm_ref("restricted-1")]
    result = run(
        armsim,
        task("inside", {"virtual_machines": restricted, "source_address_prefixes": ["203.0.113.7"]}, ignore_errors=True),
    )
    refused = result.result("inside")
    assert refused["failed"] is True
    assert "'203.0.113.7' lies inside '203.0.113.0/24' but is not one of the allowed source prefixes" in refused["msg"]
    assert "use_policy_source=true" in refused["msg"]
    assert armsim.stats()["writes"] == 0
    opened = ok(
        run(armsim, task("widened", {"virtual_machines": restricted, "source_address_prefixes": ["203.0.113.7"], "use_policy_source": True})), "widened"
    )
    port = opened["virtual_machines"][0]["ports"][0]
    assert port["action"] == "opened" and port["source"] == "203.0.113.0/24"
    assert [item["source"] for item in opened["opened"]] == ["203.0.113.0/24"]
    assert ops(armsim)["POST initiate"] == 1
    again = ok(run(armsim, task("again", {"virtual_machines": restricted, "source_address_prefixes": ["203.0.113.7"], "use_policy_source": True})), "again")
    assert again["changed"] is False  # idempotent on the prefix it requested
    assert ops(armsim)["POST initiate"] == 1


def test_wait_timeout_names_what_is_missing(armsim):
    armsim.config(apply_delay=60)
    try:
        args = {"virtual_machines": [vm_ref("both-1")], "source_address_prefixes": ["203.0.113.7"], "wait_timeout": 2}
        outcome = run(armsim, task("open", args, ignore_errors=True)).result("open")
    finally:
        armsim.config(apply_delay=ARMSIM_OPTIONS["apply_delay"])
    assert outcome["failed"] is True
    assert "timed out after 2 s" in outcome["msg"]
    assert "VM both-1 port 22 on NSG nsg-subnet (destination 10.10.0.4)" in outcome["msg"]
    assert "VM both-1 port 22 on NSG nsg-nic (destination 10.10.0.4)" in outcome["msg"]
    assert ops(armsim)["POST initiate"] == 1
    # What was initiated is live: reported so that it can be closed (the jit_guard callback uses it).
    assert [(item["vm_name"], item["port"], item["source"]) for item in outcome["opened"]] == [("both-1", 22, "203.0.113.7")]


def test_throttling_and_unavailable_are_survived(armsim):
    armsim.fault(method="GET", path_contains="networkSecurityGroups", status=429, retry_after=1, times=3)
    armsim.fault(method="POST", path_contains="initiate", status=503, times=1)
    armsim.fault(method="GET", path_contains="jitNetworkAccessPolicies", status=429, retry_after=1, times=1)
    opened = ok(run(armsim, task("open", {"virtual_machines": [vm_ref("nic-1")], "source_address_prefixes": ["203.0.113.7"]})), "open")
    assert opened["changed"] is True and opened["virtual_machines"][0]["ports"][0]["open"] is True
    statuses = [entry["status"] for entry in armsim.requests() if entry["operation"] == "POST initiate"]
    assert statuses == [503, 202]
    state = armsim.state()
    assert len(request_ports(state, "nic-1", 22)) == 1
    assert len(allow_rules(state, "nsg-nic-only")) == 1
    assert armsim.admin("GET", "/faults") in ([], {}, {"faults": []})


def test_a_task_that_outlived_its_run_requests_nothing(armsim, tmp_path):
    """jit_guard removes its record directory when the run ends (Ctrl-C, SIGTERM). A jit_request
    still running then must not initiate: nothing would close what it opened."""
    gone = str(tmp_path / "guard-record-removed" / "record.jsonl")
    armsim.reset_stats()
    result = run(
        armsim,
        task("open", {"virtual_machines": [vm_ref("a-00", "rg-fleet-a")], "ports": [22], "source_address_prefixes": ["198.51.100.10"]}, ignore_errors=True),
        env={"JITACCESS_GUARD_RECORD": gone},
    )
    failed = result.result("open")
    assert failed.get("failed") and "the run that started this task has ended" in failed["msg"] and gone in failed["msg"], failed
    assert armsim.stats()["writes"] == 0 and not ops(armsim).get("POST initiate")
