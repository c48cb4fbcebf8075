"""The nsg_jit_facts report built from REST-shaped bulk reads (pure, no SDK)."""

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _facts, _topology
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError

SUB = "00000000-0000-0000-0000-000000000001"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)  # noqa: UP017


def rid(rg, kind, name):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/{kind}/{name}"


def rule(name, priority, access="Allow", *, ports=("22",), source="*", destination="*", description=None, direction="Inbound"):
    props = {
        "priority": priority,
        "access": access,
        "direction": direction,
        "protocol": "*" if "JITRule_" in name else "Tcp",
        "sourcePortRange": "*",
        "destinationPortRanges": list(ports),
    }
    props["sourceAddressPrefixes" if isinstance(source, list) else "sourceAddressPrefix"] = source
    props["destinationAddressPrefix"] = destination
    if description:
        props["description"] = description
    return {"name": name, "properties": props}


def jit_deny(number, ip, *, ports=("22",), vm="vm", priority=4096):
    return rule(
        f"MicrosoftDefenderForCloud-JITRule_{number}_0A1B2C3D4E5F60718293A4B5C6D7E8F9",
        priority,
        "Deny",
        ports=ports,
        source="*",
        destination=ip,
        description=f"MDC JIT Network Access rule for policy 'default' of VM '{vm}'.",
    )


def jit_allow(number, ip, *, port="22", source="203.0.113.7", vm="vm", priority=100):
    return rule(
        f"MicrosoftDefenderForCloud-JITRule-{number}-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
        priority,
        "Allow",
        ports=(port,),
        source=source,
        destination=ip,
        description=f"MDC JIT Network Access rule created by an initiation request for policy 'default' of VM '{vm}'.",
    )


def nsg(name, *rules, rg="rg"):
    return {"id": rid(rg, "Microsoft.Network/networkSecurityGroups", name), "name": name, "properties": {"securityRules": list(rules)}}


class Fleet:
    """Builds an Inventory and policies: one VNet 10.0.0.0/16, subnets named by the test."""

    def __init__(self):
        self.vms, self.nics, self.nsgs, self.pips, self.subnets, self.policies = [], [], [], [], {}, []

    def subnet(self, name, nsg_name=None):
        self.subnets[name] = nsg_name
        return self

    def add_nsg(self, name, *rules, rg="rg"):
        self.nsgs.append(nsg(name, *rules, rg=rg))
        return self

    def vm(self, name, ip=None, *, subnet="s1", nic_nsg=None, public_ip=None, os_type="Linux", rg="rg", tags=None, nics=True):
        vm_id = rid(rg, "Microsoft.Compute/virtualMachines", name)
        refs = []
        if nics:
            nic_id = rid(rg, "Microsoft.Network/networkInterfaces", name + "-nic")
            config = {"primary": True, "privateIPAddress": ip, "subnet": {"id": rid("rg", "Microsoft.Network/virtualNetworks", "vnet") + "/subnets/" + subnet}}
            if public_ip:
                pip_id = rid(rg, "Microsoft.Network/publicIPAddresses", name + "-ip")
                config["publicIPAddress"] = {"id": pip_id}
                self.pips.append({"id": pip_id, "properties": {"ipAddress": public_ip}})
            props = {"ipConfigurations": [{"name": "ipconfig1", "properties": config}]}
            if nic_nsg:
                props["networkSecurityGroup"] = {"id": rid("rg", "Microsoft.Network/networkSecurityGroups", nic_nsg)}
            self.nics.append({"id": nic_id, "name": name + "-nic", "properties": props})
            refs.append({"id": nic_id})
        self.vms.append(
            {
                "id": vm_id,
                "name": name,
                "location": "westeurope",
                "tags": tags or {},
                "properties": {
                    "storageProfile": {"osDisk": {"osType": os_type}},
                    "networkProfile": {"networkInterfaces": refs},
                    "instanceView": {"statuses": [{"code": "PowerState/running"}]},
                },
            }
        )
        return self

    def policy(self, vms, requests=(), rg="rg", name="default"):
        entries = [
            {
                "id": rid(rg, "Microsoft.Compute/virtualMachines", vm),
                "ports": [{"number": port, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"} for port in ports],
            }
            for vm, ports in vms.items()
        ]
        self.policies.append(
            {
                "id": rid(rg, "Microsoft.Security/locations", "westeurope") + "/jitNetworkAccessPolicies/" + name,
                "name": name,
                "location": "westeurope",
                "properties": {"virtualMachines": entries, "requests": list(requests)},
            }
        )
        return self

    def inventory(self):
        subnets = [
            {
                "id": rid("rg", "Microsoft.Network/virtualNetworks", "vnet") + "/subnets/" + name,
                "properties": ({"networkSecurityGroup": {"id": rid("rg", "Microsoft.Network/networkSecurityGroups", n)}} if n else {}),
            }
            for name, n in self.subnets.items()
        ]
        vnet = {
            "id": rid("rg", "Microsoft.Network/virtualNetworks", "vnet"),
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": subnets},
        }
        return _topology.Inventory(self.vms, self.nics, self.nsgs, [vnet], self.pips)

    def facts(self, **scope):
        return _facts.build_facts(self.inventory(), self.policies, NOW, SUB, **scope)


def request(vm, port, end, *, requestor="ansible-ci", source="203.0.113.7", status="Initiated", justification="patching"):
    return {
        "startTimeUtc": (NOW - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requestor": requestor,
        "justification": justification,
        "virtualMachines": [
            {
                "id": rid("rg", "Microsoft.Compute/virtualMachines", vm),
                "ports": [{"number": port, "allowedSourceAddressPrefix": source, "endTimeUtc": end, "status": status, "statusReason": "UserRequested"}],
            }
        ],
    }


def by_name(facts, name):
    return next(vm for vm in facts["virtual_machines"] if vm["name"] == name)


def port(vm, number):
    return next(entry for entry in vm["exposure"] if entry["port"] == number)


def test_statuses_and_reasons():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .subnet("bare")
        .add_nsg("nsg-sub", jit_deny(1, "10.0.0.4"))
        .vm("jit", "10.0.0.4")
        .vm("plain", "10.0.0.5", os_type="Windows")
        .vm("no-nsg", "10.0.1.4", subnet="bare")
        .vm("no-nic", nics=False)
        .policy({"jit": [22]})
    )
    facts = fleet.facts()
    statuses = {vm["name"]: (vm["jit_status"], vm["unsupported_reason"]) for vm in facts["virtual_machines"]}
    assert statuses == {
        "jit": ("configured", None),
        "plain": ("not_configured", None),
        "no-nsg": ("unsupported", _topology.UNSUPPORTED_NO_NSG),
        "no-nic": ("unsupported", _topology.UNSUPPORTED_NO_NIC),
    }
    jit = by_name(facts, "jit")
    assert jit["policy"]["name"] == "default" and jit["policy"]["resource_group"] == "rg" and jit["policy"]["location"] == "westeurope"
    assert jit["ports"] == [{"number": 22, "protocol": "*", "allowed_source_address_prefixes": ["*"], "max_request_access_duration": "PT3H"}]
    # the management ports of the VM's OS only (Linux: 22), plus its policy ports
    assert [entry["port"] for entry in jit["exposure"]] == [22]
    assert [entry["port"] for entry in by_name(facts, "plain")["exposure"]] == [3389, 5985, 5986]
    assert port(jit, 22)["jit_protected"] and port(jit, 22)["in_policy"] and not port(jit, 22)["jit_bypassed"]
    assert port(jit, 22)["decided_by"] == {"level": "subnet", "nsg": "nsg-sub", "rule": jit["jit_rules"][0]["name"], "priority": 4096, "access": "Deny"}
    plain_rdp = port(by_name(facts, "plain"), 3389)
    assert not plain_rdp["jit_protected"] and plain_rdp["decided_by"]["rule"] == "DenyAllInBound"
    summary = facts["summary"]
    assert summary["jit_status"] == {"configured": 1, "not_configured": 1, "unsupported": 2}
    assert summary["unsupported_reasons"] == {_topology.UNSUPPORTED_NO_NSG: 1, _topology.UNSUPPORTED_NO_NIC: 1}
    # no NSG at all: everything admitted, but without a public IP only privately
    bare = by_name(facts, "no-nsg")
    assert port(bare, 22)["internet_allowed"] and port(bare, 22)["private_only"] and not port(bare, 22)["exposed"]
    assert port(bare, 22)["decided_by"]["rule"] is None
    assert summary["private_only_open_ports"] == 1 and summary["exposed_ports"] == 0
    assert facts["stale_rules"] == [] and facts["drift"] == []


def test_bypass_by_allow_rule_before_the_deny():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", rule("AllowSshAnywhere", 200, ports=("22",)), jit_deny(1, "10.0.0.4"))
        .vm("web", "10.0.0.4", public_ip="20.50.0.11")
        .policy({"web": [22]})
    )
    facts = fleet.facts()
    ssh = port(by_name(facts, "web"), 22)
    assert ssh["jit_protected"] and ssh["jit_bypassed"] and ssh["exposed"] and ssh["internet_allowed"]
    assert ssh["bypass_rules"] == [
        {
            "nsg": "nsg-sub",
            "nsg_id": rid("rg", "Microsoft.Network/networkSecurityGroups", "nsg-sub"),
            "name": "AllowSshAnywhere",
            "priority": 200,
            "level": "subnet",
        }
    ]
    assert ssh["decided_by"]["rule"] == "AllowSshAnywhere"
    assert facts["summary"]["jit_bypassed_ports"] == 1 and facts["summary"]["exposed_ports"] == 1
    assert facts["summary"]["exposed_virtual_machines"] == 1


def test_allow_rule_after_the_deny_is_no_bypass_and_partial_source_is():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg(
            "nsg-sub",
            jit_deny(1, "10.0.0.4", priority=1000),
            rule("AllowSshLate", 2000),
            rule("AllowRdpOffice", 300, ports=("3389",), source="198.51.100.0/24"),
        )
        .add_nsg("nsg-sub2", rule("AllowOffice", 150, source="198.51.100.0/24"), jit_deny(2, "10.0.0.5", priority=1000))
        .subnet("s2", "nsg-sub2")
        .vm("late", "10.0.0.4", public_ip="20.50.0.11", os_type=None)  # OS unknown: every management port
        .vm("office", "10.0.0.5", subnet="s2", public_ip="20.50.0.12")
        .policy({"late": [22], "office": [22]})
    )
    facts = fleet.facts()
    late = by_name(facts, "late")
    assert not port(late, 22)["jit_bypassed"] and not port(late, 22)["exposed"]
    rdp = port(late, 3389)
    assert rdp["internet_partial"] and rdp["admitted_prefixes"] == ["198.51.100.0/24"] and rdp["exposed"] and not rdp["jit_bypassed"]
    office = port(by_name(facts, "office"), 22)
    assert office["jit_bypassed"] and office["internet_partial"] and not office["internet_allowed"]
    assert [item["name"] for item in office["bypass_rules"]] == ["AllowOffice"]


@pytest.mark.parametrize(
    "subnet_rules, nic_rules, exposed, level, deciding",
    [
        ([rule("AllowSsh", 100)], [rule("DenySsh", 100, "Deny")], False, "nic", "DenySsh"),
        ([rule("DenySsh", 100, "Deny")], [rule("AllowSsh", 100)], False, "subnet", "DenySsh"),
        ([rule("AllowSsh", 100)], [rule("AllowSsh2", 100)], True, "nic", "AllowSsh2"),
        ([rule("AllowSsh", 100)], [], False, "nic", "DenyAllInBound"),
    ],
)
def test_path_needs_both_levels(subnet_rules, nic_rules, exposed, level, deciding):
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", *subnet_rules)
        .add_nsg("nsg-nic", *nic_rules)
        .vm("vm", "10.0.0.4", nic_nsg="nsg-nic", public_ip="20.50.0.11")
    )
    ssh = port(fleet.facts()["virtual_machines"][0], 22)
    assert ssh["exposed"] is exposed and ssh["internet_allowed"] is exposed
    assert (ssh["decided_by"]["level"], ssh["decided_by"]["rule"]) == (level, deciding)
    assert [item["nsg"] for item in ssh["levels"]] == ["nsg-sub", "nsg-nic"]


def test_consume_frees_the_raw_reads_and_changes_no_fact():
    """consume=True empties the lists once indexed (memory at scale); the facts are the same."""
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", jit_allow(7, "10.0.0.4", priority=100), jit_deny(1, "10.0.0.4", priority=4096))
        .vm("a", "10.0.0.4", public_ip="20.50.0.11")
        .vm("b", "10.0.0.5")
        .policy({"a": [22]})
    )
    inventory = fleet.inventory()
    consumed = _facts.build_facts(inventory, fleet.policies, NOW, SUB, consume=True)
    assert consumed == fleet.facts() and len(consumed["virtual_machines"]) == 2
    released = ("virtual_machines", "network_interfaces", "public_ip_addresses", "network_security_groups")
    assert [len(getattr(inventory, kind)) for kind in released] == [0, 0, 0, 0]
    assert len(inventory.virtual_networks) == 1  # Bastion reachability still reads them


def test_requests_stale_allow_and_open_by_request():
    end = (NOW + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg(
            "nsg-sub",
            jit_allow(7, "10.0.0.4", priority=100),
            jit_allow(8, "10.0.0.5", source="*", priority=101),
            jit_allow(9, "10.0.0.6", priority=102),
            jit_deny(1, "10.0.0.4", priority=4096),
            jit_deny(2, "10.0.0.5", priority=4095),
            jit_deny(3, "10.0.0.6", priority=4094),
        )
        .vm("active", "10.0.0.4", public_ip="20.50.0.11")
        .vm("wide", "10.0.0.5", public_ip="20.50.0.12")
        .vm("expired", "10.0.0.6", public_ip="20.50.0.13")
        .policy(
            {"active": [22], "wide": [22], "expired": [22]},
            requests=[
                request("active", 22, end),
                request("wide", 22, end, source="*", requestor="alice@example.com"),
                request("expired", 22, past, status="Revoked"),
            ],
        )
    )
    facts = fleet.facts()
    active = by_name(facts, "active")
    assert active["active_requests"] == [
        {
            "port": 22,
            "closed_early": False,
            "sources": ["203.0.113.7"],
            "start_time_utc": "2026-11-21T09:30:00Z",
            "end_time_utc": end,
            "status": "Initiated",
            "requestor": "ansible-ci",
            "justification": "patching",
        }
    ]
    assert [(item["kind"], item["stale"]) for item in active["jit_rules"]] == [("allow", False), ("deny", False)]
    ssh = port(active, 22)
    assert ssh["internet_partial"] and ssh["admitted_prefixes"] == ["203.0.113.7"] and ssh["exposed"] and ssh["open_by_jit_request"] and not ssh["jit_bypassed"]
    wide = port(by_name(facts, "wide"), 22)
    assert wide["internet_allowed"] and wide["open_by_jit_request"] and not wide["jit_bypassed"]
    expired = by_name(facts, "expired")
    assert expired["active_requests"] == []
    # the left-behind allow rule still opens the port: exposed, and not by any request
    assert port(expired, 22)["exposed"] and not port(expired, 22)["open_by_jit_request"]
    assert facts["summary"]["exposed_ports"] == 1 and facts["summary"]["open_by_jit_request_ports"] == 2
    assert [(item["vm_name"], item["kind"], item["reason"]) for item in facts["stale_rules"]] == [("expired", "allow", _facts.STALE_ALLOW_NO_REQUEST)]
    assert facts["summary"]["active_requests"] == 2 and facts["summary"]["stale_rules"] == 1
    assert facts["summary"]["closed_early_requests"] == 0


def test_a_request_closed_early_is_not_counted_as_open_access():
    """Azure keeps a request Initiated until its end; once its allow rules are deleted (closed early)
    and Defender is past applying it, it is listed as closed_early, not as active access."""
    end = (NOW + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", jit_allow(7, "10.0.0.4", priority=100), jit_deny(1, "10.0.0.4", priority=4096), jit_deny(2, "10.0.0.5", priority=4095))
        .vm("open", "10.0.0.4", public_ip="20.50.0.11")
        .vm("closed", "10.0.0.5", public_ip="20.50.0.12")
        .policy({"open": [22], "closed": [22]}, requests=[request("open", 22, end), request("closed", 22, end)])
    )
    facts = fleet.facts()
    assert [item["closed_early"] for item in by_name(facts, "open")["active_requests"]] == [False]
    assert [item["closed_early"] for item in by_name(facts, "closed")["active_requests"]] == [True]
    assert facts["summary"]["active_requests"] == 1 and facts["summary"]["closed_early_requests"] == 1


def test_deny_for_vm_in_no_policy_orphans_and_drift():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", jit_deny(1, "10.0.0.4"), jit_deny(2, "10.0.0.5", priority=4095), jit_deny(3, "10.0.0.99", priority=4094))
        .add_nsg("nsg-nic", jit_deny(4, "10.0.0.4", ports=("3389",)))
        .vm("left", "10.0.0.4", nic_nsg="nsg-nic")
        .vm("drifted", "10.0.0.5", nic_nsg="nsg-nic")
        .policy({"drifted": [22, 3389]})
    )
    facts = fleet.facts()
    reasons = sorted((item["vm_name"], item["nsg"], item["reason"]) for item in facts["stale_rules"])
    assert reasons == sorted(
        [
            ("left", "nsg-sub", _facts.STALE_DENY_NO_POLICY),
            ("left", "nsg-nic", _facts.STALE_DENY_NO_POLICY),
            ("vm", "nsg-sub", _facts.STALE_NO_VM),
        ]
    )
    drift = sorted((item["vm_name"], item["nsg"], item["level"], tuple(item["missing_ports"])) for item in facts["drift"])
    assert drift == [("drifted", "nsg-nic", "nic", (22, 3389)), ("drifted", "nsg-sub", "subnet", (3389,))]
    assert facts["summary"]["drift"] == 2 and facts["summary"]["stale_rules"] == 3
    # a scoped report does not hunt for orphans and lists only the scope's rules
    scoped = fleet.facts(virtual_machines=[{"name": "left", "resource_group": "rg"}])
    assert [item["vm_name"] for item in scoped["stale_rules"]] == ["left", "left"] and scoped["drift"] == []


def test_policy_vm_without_nsg_is_unsupported_and_drift():
    fleet = Fleet().subnet("bare").vm("gone", "10.0.1.4", subnet="bare").policy({"gone": [22]})
    facts = fleet.facts()
    vm = facts["virtual_machines"][0]
    assert vm["jit_status"] == "unsupported" and vm["policy"]["name"] == "default"
    assert facts["drift"][0]["reason"].startswith(_facts.DRIFT_UNSUPPORTED) and facts["drift"][0]["missing_ports"] == [22]


def test_policy_ports_are_evaluated_with_their_protocol():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", rule("AllowDns", 100, ports=("53",)), jit_deny(1, "10.0.0.4", ports=("8443",)))
        .vm("vm", "10.0.0.4", public_ip="1.2.3.4")
    )
    fleet.policy({"vm": [8443]})
    fleet.policies[0]["properties"]["virtualMachines"][0]["ports"].append(
        {"number": 53, "protocol": "UDP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}
    )
    vm = fleet.facts()["virtual_machines"][0]
    assert [(item["port"], item["protocol"]) for item in vm["exposure"]] == [(22, "TCP"), (53, "UDP"), (8443, "TCP")]
    assert not port(vm, 53)["exposed"]  # the allow rule is Tcp only
    assert port(vm, 8443)["jit_protected"] and port(vm, 8443)["in_policy"] and not port(vm, 22)["in_policy"]
    # only levels that have an NSG are listed
    assert [(level["level"], level["nsg"], level["allowed"]) for level in port(vm, 8443)["levels"]] == [("subnet", "nsg-sub", False)]


def test_scope_filters():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub")
        .vm("a", "10.0.0.4", rg="rg-a", tags={"Env": "prod", "tier": "web"})
        .vm("b", "10.0.0.5", rg="rg-a", tags={"env": "dev"})
        .vm("c", "10.0.0.6", rg="rg-b", tags={"env": "prod", "n": "1"})
    )

    def names(**scope):
        return [vm["name"] for vm in fleet.facts(**scope)["virtual_machines"]]

    assert names() == ["a", "b", "c"]
    assert names(resource_groups=["RG-A"]) == ["a", "b"]
    assert names(tags={"env": "prod"}) == ["a", "c"]
    assert names(tags={"env": "prod", "n": 1}) == ["c"]
    assert names(resource_groups=["rg-a"], tags={"env": "prod"}) == ["a"]
    assert names(virtual_machines=[{"id": rid("rg-b", "Microsoft.Compute/virtualMachines", "C")}, {"name": "b", "resource_group": "rg-a"}]) == ["b", "c"]
    assert names(resource_groups=["nope"]) == []
    scope = fleet.facts(tags={"env": "prod"})["scope"]
    assert scope == {"resource_groups": [], "virtual_machines": [], "tags": {"env": "prod"}, "whole_subscription": False}
    with pytest.raises(JitValidationError, match="not found.*rg-a/providers/Microsoft.Compute/virtualMachines/zz"):
        fleet.facts(virtual_machines=[{"name": "zz", "resource_group": "rg-a"}])
    with pytest.raises(JitValidationError, match="tag 'env' has value None"):
        fleet.facts(tags={"env": None})
    with pytest.raises(JitValidationError, match="is not valid: expected a dictionary"):
        _facts.check_tags(["env"])


def test_shared_nsg_index_gives_the_same_verdict_as_a_full_scan():
    rules = [jit_deny(i, f"10.0.{i // 250}.{i % 250 + 4}", priority=4096 - i) for i in range(600)]
    rules.append(rule("AllowSshFromVnetRange", 300, source="*", destination="10.0.1.0/24"))
    fleet = Fleet().subnet("s1", "nsg-sub").add_nsg("nsg-sub", *rules)
    for i in range(0, 600, 97):
        fleet.vm(f"vm{i}", f"10.0.{i // 250}.{i % 250 + 4}", public_ip=f"20.0.0.{i % 250}")
    facts = fleet.facts()
    for vm in facts["virtual_machines"]:
        ssh = port(vm, 22)
        in_range = vm["nics"][0]["private_ip"].startswith("10.0.1.")
        assert ssh["exposed"] is in_range and ssh["jit_bypassed"] is in_range and ssh["jit_protected"]
        assert len(vm["jit_rules"]) == 1 and vm["jit_rules"][0]["destination"] == [vm["nics"][0]["private_ip"]]
    # every deny rule is for a VM in no policy or no VM at all
    assert len(facts["stale_rules"]) == 600


def test_summary_detail_keeps_identity_status_findings_and_the_same_counts():
    fleet = (
        Fleet()
        .subnet("s1", "nsg-sub")
        .add_nsg("nsg-sub", rule("AllowSshAnywhere", 200, ports=("22",)), jit_deny(1, "10.0.0.4"))
        .vm("web", "10.0.0.4", public_ip="20.50.0.11")
        .vm("db", "10.0.0.5")
        .policy({"web": [22]})
    )
    full = fleet.facts()
    compact = fleet.facts(detail="summary")
    assert compact["summary"] == full["summary"] and compact["stale_rules"] == full["stale_rules"] and compact["drift"] == full["drift"]
    assert compact["policies"] == full["policies"]
    web, db = by_name(compact, "web"), by_name(compact, "db")
    assert set(web) == set(_facts.SUMMARY_VM_KEYS) - {"other_policies"} | {"exposure"}
    assert web["jit_status"] == "configured" and web["policy"] == by_name(full, "web")["policy"]
    # Only the entries that need attention, identical to the full ones (public IP included).
    assert web["exposure"] == [item for item in by_name(full, "web")["exposure"] if item["exposed"] or item["private_only"] or item["jit_bypassed"]]
    assert [item["port"] for item in web["exposure"]] == [22] and web["exposure"][0]["public_ip"] == "20.50.0.11"
    assert [(item["port"], item["private_only"], item["public_ip"]) for item in db["exposure"]] == [(22, True, None)]
    assert "nics" not in db and "jit_rules" not in db and "ports" not in db and "active_requests" not in db
    with pytest.raises(JitValidationError, match="detail 'brief' is not valid: expected one of full, summary"):
        fleet.facts(detail="brief")


def test_the_internet_has_a_way_in_only_through_a_public_ip_that_lets_it_in():
    """A Standard public IP is closed to inbound traffic unless an NSG allows it; Basic (retired) and
    unknown SKUs count as open (a verdict must not hide exposure); no public IP, no Internet."""
    from ansible_collections.jitaccess.azure.plugins.module_utils._facts import internet_path

    nsg = object()
    assert internet_path({"public_ip": None, "public_ip_sku": None}, nsg, nsg) is False
    assert internet_path({"public_ip": "20.0.0.1", "public_ip_sku": "Standard"}, None, None) is False
    assert internet_path({"public_ip": "20.0.0.1", "public_ip_sku": "standard"}, nsg, None) is True
    assert internet_path({"public_ip": "20.0.0.1", "public_ip_sku": "Standard"}, None, nsg) is True
    assert internet_path({"public_ip": "20.0.0.1", "public_ip_sku": "Basic"}, None, None) is True
    assert internet_path({"public_ip": "20.0.0.1"}, None, None) is True


def test_management_ports_follow_the_os_and_all_when_unknown():
    assert _facts.management_ports("Linux") == (22,)
    assert _facts.management_ports("windows") == (3389, 5985, 5986)
    assert _facts.management_ports(None) == _facts.management_ports("Solaris") == (22, 3389, 5985, 5986)
