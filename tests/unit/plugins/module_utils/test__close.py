"""plan_close / delete_rules (module_utils/_close.py): which JIT allow rules closing deletes."""

import pytest
from fakes import (
    ALLOW_DESCRIPTION,
    ALLOW_NAME,
    NSG_NIC,
    NSG_SUBNET,
    SECOND_ALLOW_NAME,
    VM_IP,
    WEB_VM,
    by_id,
    jit_allow,
    jit_deny,
    nsg_resource,
    rest_rule,
    vm_id,
    vm_record,
)

from ansible_collections.jitaccess.azure.plugins.module_utils import _access, _close, _nsg

VM_A = WEB_VM
VM_B = vm_id("web-2")
GUID = "0123456789abcdef0123456789abcdef"


def rule(name, priority, access, source, dest, ports, description=""):  # noqa: PLR0917
    return rest_rule(name, priority, access, source, [str(port) for port in ports], dest, "*" if access == "Deny" else "Tcp", description=description)


def allow(number, priority, source, dest, port):
    return rule(
        "MicrosoftDefenderForCloud-JITRule-%d-%s" % (number, GUID),
        priority,
        "Allow",
        source,
        dest,
        [port],
        "MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'x'.",
    )


def deny(number, priority, dest, ports):
    return rule("MicrosoftDefenderForCloud-JITRule_%d_%s" % (number, GUID.upper()), priority, "Deny", "*", dest, ports)


def topology():
    def record(vm_id, name, ip):
        return {
            "id": vm_id,
            "name": name,
            "nics": [{"private_ip": ip}],
            "nsg_ids": [NSG_SUBNET, NSG_NIC],
        }

    return {VM_A.lower(): record(VM_A, "web-1", "10.1.0.4"), VM_B.lower(): record(VM_B, "web-2", "10.1.0.5")}


def nsgs():
    subnet_rules = [
        allow(1, 100, "203.0.113.7", "10.1.0.4", 22),
        allow(2, 101, "198.51.100.1", "10.1.0.4", 22),
        allow(3, 102, "203.0.113.7", "10.1.0.5", 22),
        allow(4, 103, "203.0.113.7", "10.1.0.4", 3389),
        deny(5, 4096, "10.1.0.4", [22, 3389]),
        rule("AllowHttps", 300, "Allow", "*", "*", [443]),
        rule("AllowSshFromAnywhere", 310, "Allow", "*", "*", [22]),
    ]
    nic_rules = [allow(6, 100, "203.0.113.7", "10.1.0.4", 22), deny(7, 4096, "10.1.0.4", [22])]
    return {
        NSG_SUBNET.lower(): {"id": NSG_SUBNET, "properties": {"securityRules": subnet_rules}},
        NSG_NIC.lower(): {"id": NSG_NIC, "properties": {"securityRules": nic_rules}},
    }


def names(planned):
    return sorted((item["nsg_name"], item["rule_name"].split("-")[2]) for item in planned)


def test_source_port_and_vm_select_exactly_the_allow_rules():
    planned, unknown, _kept = _close.plan_close(topology(), nsgs(), [{"vm_id": VM_A, "ports": [22], "sources": ["203.0.113.7"]}])
    assert unknown == []
    # the subnet rule and the NIC rule for that VM/port/source; not the other source, VM or port
    assert names(planned) == [("nsg-nic", "6"), ("nsg-subnet", "1")]
    assert {item["vm_name"] for item in planned} == {"web-1"}
    assert planned[0]["resource_group"] == "rg-web"


def test_no_source_closes_every_source_but_never_deny_or_other_rules():
    planned, _unknown, _kept = _close.plan_close(topology(), nsgs(), [{"vm_id": VM_A.upper(), "ports": None, "sources": None}])
    assert names(planned) == [("nsg-nic", "6"), ("nsg-subnet", "1"), ("nsg-subnet", "2"), ("nsg-subnet", "4")]
    assert all("JITRule-" in item["rule_name"] for item in planned)


def test_port_dicts_single_port_and_source_string_forms():
    target = {"id": VM_A, "port": {"number": 3389}, "source": "203.0.113.7"}
    assert _close.normalize_target(target) == {"vm_id": VM_A, "ports": [3389], "sources": ["203.0.113.7"]}
    planned, _unknown, _kept = _close.plan_close(topology(), nsgs(), [target])
    assert names(planned) == [("nsg-subnet", "4")]


def test_unknown_vm_is_reported_and_nothing_planned():
    ghost = vm_id("ghost")
    planned, unknown, _kept = _close.plan_close(topology(), nsgs(), [{"vm_id": ghost, "ports": [22]}])
    assert planned == [] and unknown == [ghost]


def test_allow_rule_with_wildcard_destination_is_never_selected():
    data = nsgs()
    data[NSG_NIC.lower()]["properties"]["securityRules"] = [allow(9, 100, "203.0.113.7", "*", 22)]
    planned, _unknown, _kept = _close.plan_close(topology(), data, [{"vm_id": VM_A, "ports": [22], "sources": ["203.0.113.7"]}])
    assert names(planned) == [("nsg-subnet", "1")]


def test_rules_admitting_more_than_asked_are_kept_with_the_reason():
    data = nsgs()
    rules = data[NSG_NIC.lower()]["properties"]["securityRules"]
    wide = allow(8, 101, "203.0.113.7", "10.1.0.4", 22)
    wide["properties"]["destinationPortRanges"] = ["22", "2222"]
    other = allow(9, 102, "203.0.113.7", "10.1.0.4", 22)
    other["properties"]["destinationAddressPrefix"] = "10.1.0.0/24"
    description = "MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'x'."
    lookalike = rule("Custom-allow-22", 103, "Allow", "203.0.113.7", "10.1.0.4", [22], description)
    rules.extend([wide, other, lookalike])
    planned, _unknown, kept = _close.plan_close(topology(), data, [{"vm_id": VM_A, "ports": [22], "sources": ["203.0.113.7/32"]}])
    assert names(planned) == [("nsg-nic", "6"), ("nsg-subnet", "1")]
    reasons = {item["rule_name"].split("-")[2]: item["reason"] for item in kept}
    assert reasons == {"8": "it also admits ports not asked for (22, 2222)", "9": "it also admits other destinations (10.1.0.0/24)"}
    # asked for both ports, the two-port rule goes too
    planned, _unknown, kept = _close.plan_close(topology(), data, [{"vm_id": VM_A, "ports": [22, 2222], "sources": ["203.0.113.7"]}])
    assert ("nsg-nic", "8") in names(planned) and [item["rule_name"].split("-")[2] for item in kept] == ["9"]


def close_plan(record, nsgs, ports=None, sources=None):
    """What ``state=absent`` selects: ``{port: [(nsg id, rule name)]}`` and ``{rule name: reason}`` kept."""
    planned, unknown, kept = _close.plan_close({VM_A.lower(): record}, nsgs, [{"vm_id": VM_A, "ports": ports, "sources": sources}])
    assert unknown == []
    by_port = {}
    for item in planned:
        for number in item["port_numbers"]:
            by_port.setdefault(number, []).append((item["nsg_id"], item["rule_name"]))
    return by_port, {item["rule_name"]: item["reason"] for item in kept}


def test_close_selects_only_jit_allow_rules_of_the_vm():
    subnet = nsg_resource(
        NSG_SUBNET,
        jit_deny(),
        jit_allow(),
        rest_rule("AllowSsh", 200, destination=VM_IP, description=""),
        rest_rule("Lookalike", 201, source="203.0.113.7", destination=VM_IP, description=ALLOW_DESCRIPTION),
        jit_allow(101, "3389", name=SECOND_ALLOW_NAME),
    )
    nic = nsg_resource(NSG_NIC, jit_allow(), jit_allow(105, destination="10.1.0.99", name="MicrosoftDefenderForCloud-JITRule-9-CCCC"))
    by_port, kept = close_plan(vm_record(), by_id(subnet, nic), ports=[22])
    assert {port: sorted(rules) for port, rules in by_port.items()} == {22: sorted([(NSG_SUBNET, ALLOW_NAME), (NSG_NIC, ALLOW_NAME)])}
    assert kept == {}
    by_port, kept = close_plan(vm_record(), by_id(subnet, nic))
    assert sorted(by_port) == [22, 3389]
    by_port, kept = close_plan(vm_record(), by_id(subnet, nic), ports=[22], sources=["198.51.100.1"])
    assert by_port == {}


def test_close_keeps_rules_that_would_close_more():
    shared = jit_allow(destination=[VM_IP, "10.1.0.5"])
    wide = jit_allow(101, ["22", "3389"], name=SECOND_ALLOW_NAME)
    by_port, kept = close_plan(vm_record(nic_nsg=None), by_id(nsg_resource(NSG_SUBNET, shared, wide)), ports=[22])
    assert by_port == {}
    assert "other destinations" in kept[ALLOW_NAME]
    assert "ports not asked for" in kept[SECOND_ALLOW_NAME]


def test_describe_planned_rule_has_the_shape_of_an_access_entry():
    raw = jit_allow()
    nsgs = by_id(nsg_resource(NSG_SUBNET, raw))
    planned, _unknown, _kept = _close.plan_close({VM_A.lower(): vm_record(nic_nsg=None)}, nsgs, [{"vm_id": VM_A, "ports": [22]}])
    (item,) = planned
    assert _close.describe_planned_rule(item) == _access.describe_rule(NSG_SUBNET, _nsg.SecurityRule.from_azure(raw))


def test_target_without_vm_id_is_rejected():
    with pytest.raises(ValueError, match="no vm_id"):
        _close.normalize_target({"ports": [22]})


class FakeApi:
    """begin_delete/wait of _api.ArmApi; ``wait`` fails for the rules named in ``fail_on``."""

    def __init__(self, fail_on=()):
        self.log = []
        self.fail_on = fail_on

    def begin_delete(self, rule_id, api_version):
        name = rule_id.rsplit("/", 1)[1]
        self.log.append(("start", name))
        return name

    def wait(self, operation):
        if operation in self.fail_on:
            raise RuntimeError("boom")
        self.log.append(("done", operation))


def test_delete_rules_starts_every_deletion_before_waiting_and_reports_failures():
    planned, _unknown, _kept = _close.plan_close(topology(), nsgs(), [{"vm_id": VM_A, "ports": [22], "sources": ["203.0.113.7"]}])
    fake = FakeApi(fail_on=(planned[1]["rule_name"],))
    errors = []

    def call(action, function):
        try:
            return function()
        except RuntimeError as exc:
            errors.append((action, str(exc)))
            return None

    deleted = _close.delete_rules(fake, call, planned)
    assert [entry[0] for entry in fake.log] == ["start", "start", "done"]
    assert deleted == [planned[0]]
    assert len(errors) == 1 and planned[1]["rule_name"] in errors[0][0]
