"""Drift repair: JIT deny rules that an IaC tool deleted come back with one jit_policy run.

Each test purges the rules the way a tool that owns an NSG's rule list does (the NSG written
again with only its own rules; only JIT's rules deleted; one port taken out of a deny rule), on
subnet and NIC NSGs, through ARM itself, then runs jit_policy with the VMs already in the policy
and asserts armsim's rules and write counts: one policy write per drifted policy, the deny rules
back when the task returns (armsim applies a policy write's deny rules after a delay), and zero
writes on a rerun.
"""

import requests
from harness import run_playbook
from roles_support import jit_rules_in_state

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
