"""Drift repair: JIT deny rules that an IaC tool deleted come back with one jit_policy run.

Each test purges the rules the way a tool that owns an NSG's rule list does (the NSG written
again with only its own rules; only JIT's rules deleted; one port taken out of a deny rule), on
subnet and NIC NSGs, through ARM itself, then runs jit_policy with the VMs already in the policy
and asserts armsim's rules and write counts: one policy write per drifted policy, the deny rules
back when the task returns (armsim applies a policy write's deny rules after a delay), and zero
writes on a rerun.
"""

import json
from unittest.mock import ANY

import requests
from harness import run_playbook
from roles_support import PLAYBOOKS, jit_rules_in_state

ANY_ID = ANY

NETWORK_API = "2024-05-01"
SUB = "00000000-0000-0000-0000-000000000001"


def _vm(name, address, nic_nsg=None, vnet="vnet-a"):
    return {"name": name, "os_type": "Linux", "nics": [{"subnet": vnet + "/default", "private_ip": address, "nsg": nic_nsg}]}


WEB_1, WEB_2, B_1 = _vm("web-1", "10.1.0.4", "nsg-nic"), _vm("web-2", "10.1.0.5"), _vm("b-1", "10.2.0.4", vnet="vnet-b")


ALLOW_HTTPS = {"name": "AllowHttps", "priority": 300, "access": "Allow", "protocol": "Tcp", "source": "*", "destination_ports": ["443"]}


def _group(name, prefix, nsgs, subnet_nsg, vms):
    subnet = {"name": "default", "prefix": prefix + ".0/24", "nsg": subnet_nsg}
    return {
        "name": name,
        "location": "westeurope",
        "network_security_groups": nsgs,
        "virtual_networks": [{"name": "vnet-" + name[-1], "address_space": prefix + ".0/24", "subnets": [subnet]}],
        "virtual_machines": vms,
    }


def _policy(group, *vms):
    return {"name": "default", "resource_group": group, "location": "westeurope", "virtual_machines": [{"name": name, "ports": ports} for name, ports in vms]}


ARMSIM_SEED = {
    "subscription_id": SUB,
    "resource_groups": [
        _group(
            "rg-a",
            "10.1.0",
            [{"name": "nsg-sub", "rules": [ALLOW_HTTPS]}, {"name": "nsg-nic", "rules": []}],
            "nsg-sub",
            [_vm("web-1", "10.1.0.4", "nsg-nic"), _vm("web-2", "10.1.0.5")],
        ),
        _group(
            "rg-b",
            "10.2.0",
            [{"name": "nsg-b", "rules": []}],
            "nsg-b",
            [dict(_vm("b-1", "10.2.0.4"), nics=[{"subnet": "vnet-b/default", "private_ip": "10.2.0.4"}])],
        ),
    ],
    "jit_policies": [_policy("rg-a", ("web-1", [22, 3389]), ("web-2", [22])), _policy("rg-b", ("b-1", [22]))],
}


def _ports(*numbers):
    return [{"number": number, "protocol": "*"} for number in numbers]


# The policies as they are: running jit_policy with them changes no entry.
TASK = {
    "virtual_machines": [
        {"name": "web-1", "resource_group": "rg-a", "ports": _ports(22, 3389)},
        {"name": "web-2", "resource_group": "rg-a", "ports": _ports(22)},
        {"name": "b-1", "resource_group": "rg-b", "ports": _ports(22)},
    ]
}


def arm(sim, method, path, body=None):
    """One ARM call as another tool makes it (its own token, TLS verified against armsim's CA)."""
    token = sim.credential().get_token(sim.info["arm_url"] + "/.default").token
    response = requests.request(
        method,
        sim.info["arm_url"] + path,
        params={"api-version": NETWORK_API},
        json=body,
        headers={"Authorization": "Bearer " + token},
        verify=sim.info["ca_bundle"],
        timeout=60,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def nsg_path(name, group="rg-a"):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkSecurityGroups/%s" % (SUB, group, name)


def denies(sim):
    return sorted((rule["nsg"], rule["destination"], tuple(sorted(rule["ports"], key=int))) for rule in jit_rules_in_state(sim.state(), "deny"))


def deny_names(sim, nsg):
    return [rule["name"] for rule in jit_rules_in_state(sim.state(), "deny") if rule["nsg"] == nsg]


def policy(sim, *, check=False, diff=False, **options):
    run = run_playbook(
        sim,
        [{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "p", "jitaccess.azure.jit_policy": dict(TASK, **options)}]}],
        check=check,
        diff=diff,
    )
    return run.result("p"), run


def writes(sim):
    return sim.stats()["by_operation"].get("PUT jitNetworkAccessPolicies", 0)


EXPECTED = [
    ("nsg-b", "10.2.0.4", ("22",)),
    ("nsg-nic", "10.1.0.4", ("22", "3389")),
    ("nsg-sub", "10.1.0.4", ("22", "3389")),
    ("nsg-sub", "10.1.0.5", ("22",)),
]


def test_seed_is_in_place_and_nothing_to_repair(armsim):
    assert denies(armsim) == EXPECTED
    result, _run = policy(armsim)
    assert result["changed"] is False and result["repaired"] == [] and writes(armsim) == 0


def test_an_nsg_written_again_with_only_its_own_rules(armsim):
    """Terraform / Bicep with a full rule list: the subnet NSG is replaced, JIT's rules are gone."""
    current = arm(armsim, "GET", nsg_path("nsg-sub"))
    own = [rule for rule in current["properties"]["securityRules"] if not rule["name"].startswith("MicrosoftDefenderForCloud")]
    arm(armsim, "PUT", nsg_path("nsg-sub"), {"location": current["location"], "properties": {"securityRules": own}})
    assert [item for item in denies(armsim) if item[0] == "nsg-sub"] == []
    armsim.config(deny_apply_delay=1.5)  # the rules come back after the write, as in Azure
    armsim.reset_stats()

    planned, _run = policy(armsim, check=True, diff=True)
    assert planned["changed"] is True and writes(armsim) == 0
    assert sorted((item["vm_name"], item["missing_ports"]) for item in planned["repaired"]) == [("web-1", [22, 3389]), ("web-2", [22])]
    (diff,) = planned["diff"]
    assert diff["after"]["missing_deny_rules"] == [] and len(diff["before"]["missing_deny_rules"]) == 2

    repaired, _run = policy(armsim)
    assert repaired["changed"] is True and writes(armsim) == 1  # one write for the drifted policy, none for rg-b's
    assert [item["action"] for item in repaired["policies"]] == ["repaired", "unchanged"]
    assert denies(armsim) == EXPECTED  # back when the task returned: the module waited for them
    assert "AllowHttps" in [rule["name"] for rule in arm(armsim, "GET", nsg_path("nsg-sub"))["properties"]["securityRules"]]

    again, _run = policy(armsim)
    assert again["changed"] is False and writes(armsim) == 1  # the rerun writes nothing


def test_only_jit_rules_deleted_on_a_nic_nsg_and_one_port_taken_out(armsim):
    """azure_rm_securitygroup with purge_rules: JIT's rule deleted on the NIC NSG; and a tool that
    rewrites web-1's subnet deny rule without port 3389."""
    (nic_rule,) = deny_names(armsim, "nsg-nic")
    arm(armsim, "DELETE", nsg_path("nsg-nic") + "/securityRules/" + nic_rule)
    (sub_rule,) = [rule["name"] for rule in jit_rules_in_state(armsim.state(), "deny") if rule["nsg"] == "nsg-sub" and rule["destination"] == "10.1.0.4"]
    body = arm(armsim, "GET", nsg_path("nsg-sub") + "/securityRules/" + sub_rule)
    body["properties"]["destinationPortRanges"] = ["22"]
    arm(armsim, "PUT", nsg_path("nsg-sub") + "/securityRules/" + sub_rule, {"properties": body["properties"]})
    armsim.reset_stats()

    reported, _run = policy(armsim, drift="report")
    assert reported["changed"] is False and writes(armsim) == 0 and reported["repaired"] == []
    (drifted,) = [item for item in reported["policies"] if item["drift"]]
    assert sorted((item["nsg_id"].rsplit("/", 1)[1], item["missing_ports"]) for item in drifted["drift"]) == [("nsg-nic", [22, 3389]), ("nsg-sub", [3389])]
    assert any("drift=report: not repaired" in warning for warning in reported["warnings"])

    repaired, _run = policy(armsim)
    assert repaired["changed"] is True and writes(armsim) == 1
    assert denies(armsim) == EXPECTED


def test_a_repair_that_does_not_come_back_fails_naming_what_is_missing(armsim):
    (nic_rule,) = deny_names(armsim, "nsg-nic")
    arm(armsim, "DELETE", nsg_path("nsg-nic") + "/securityRules/" + nic_rule)
    armsim.config(deny_apply_delay=30)
    result, _run = policy(armsim, wait_timeout=1)
    assert result["failed"] and result["changed"] is True
    assert "after 1 s deny rules missing for web-1 ports 22,3389 on nsg-nic (10.1.0.4)" in result["msg"]
    assert writes(armsim) == 1


# --- the jit_fleet role ------------------------------------------------------------------------

STALE = "MicrosoftDefenderForCloud-JITRule-777-0123456789ABCDEF0123456789ABCDEF"


def fleet(sim, tmp_path, **variables):
    extra = dict({"jit_fleet_report_dir": str(tmp_path), "jit_fleet_ports": {"linux": [{"number": 22, "protocol": "*"}]}}, **variables)
    run = run_playbook(sim, PLAYBOOKS + "/enable_jit_fleet.yml", extra_vars=extra)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads((tmp_path / "jit_fleet_report.json").read_text()), (tmp_path / "jit_fleet_report.md").read_text()


def test_the_role_reports_drift_in_audit_and_repairs_it_in_enforce(armsim, tmp_path):
    (nic_rule,) = deny_names(armsim, "nsg-nic")
    arm(armsim, "DELETE", nsg_path("nsg-nic") + "/securityRules/" + nic_rule)
    armsim.reset_stats()

    audit, page = fleet(armsim, tmp_path)
    assert armsim.stats()["writes"] == 0
    assert audit["drift_repair"] == {
        "action": "would repair",
        "rules": [{"vm": "web-1", "id": ANY_ID, "nsg": "nsg-nic", "private_ip": "10.1.0.4", "ports": [22, 3389]}],
    }
    assert "would repair by writing their policy again" in page

    enforce, page = fleet(armsim, tmp_path, jit_fleet_mode="enforce")
    assert writes(armsim) == 1 and enforce["drift_repair"]["action"] == "repaired" and len(enforce["drift_repair"]["rules"]) == 1
    assert enforce["drift"] == [] and denies(armsim) == EXPECTED
    # web-1 kept its ports (22 and 3389) although jit_fleet_ports has only 22: repair changes no entry.
    (policy_a,) = [p for p in armsim.state()["jit_policies"] if "/resourceGroups/rg-a/" in p["id"]]
    assert [port["number"] for port in policy_a["properties"]["virtualMachines"][0]["ports"]] == [22, 3389]

    again, _page = fleet(armsim, tmp_path, jit_fleet_mode="enforce")
    assert writes(armsim) == 1 and again["drift_repair"]["rules"] == []


def test_the_role_removes_stale_allow_rules_only_when_asked(armsim, tmp_path):
    opened = {"virtual_machines": [{"name": "web-1", "resource_group": "rg-a"}], "ports": [22], "source_address_prefixes": ["203.0.113.7"]}
    run = run_playbook(armsim, [{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "open", "jitaccess.azure.jit_request": opened}]}])
    assert run.rc == 0, run.stdout[-3000:]
    leftover = {
        "description": "MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'web-2'.",
        "protocol": "*",
        "sourcePortRange": "*",
        "destinationPortRange": "22",
        "sourceAddressPrefix": "203.0.113.9",
        "destinationAddressPrefix": "10.1.0.5",
        "access": "Allow",
        "priority": 150,
        "direction": "Inbound",
    }
    arm(armsim, "PUT", nsg_path("nsg-sub") + "/securityRules/" + STALE, {"properties": leftover})
    allow = [(rule["nsg"], rule["destination"]) for rule in jit_rules_in_state(armsim.state(), "allow")]
    assert sorted(allow) == [("nsg-nic", "10.1.0.4"), ("nsg-sub", "10.1.0.4"), ("nsg-sub", "10.1.0.5")]

    report, _page = fleet(armsim, tmp_path, jit_fleet_mode="enforce")
    assert report["stale_rules"] >= 1 and report["stale_allow_rules_removed"] == []  # reported, not removed
    assert len(jit_rules_in_state(armsim.state(), "allow")) == 3

    report, page = fleet(armsim, tmp_path, jit_fleet_mode="enforce", jit_fleet_remove_stale_allow_rules=True)
    assert report["stale_allow_rules_removed"] == [{"vm_name": "web-2", "port": 22, "rule": STALE, "nsg": "nsg-sub"}]
    assert "## Stale JIT allow rules removed (1)" in page
    remaining = sorted((rule["nsg"], rule["destination"]) for rule in jit_rules_in_state(armsim.state(), "allow"))
    assert remaining == [("nsg-nic", "10.1.0.4"), ("nsg-sub", "10.1.0.4")]  # the access in use stays
