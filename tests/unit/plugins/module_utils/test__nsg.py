# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import ipaddress

import pytest
from fakes import (
    ALLOW_DESCRIPTION,
    ALLOW_NAME,
    DENY_DESCRIPTION,
    DENY_NAME,
    NSG_NIC,
    NSG_SUBNET,
    SECOND_ALLOW_NAME,
    VM_IP,
    by_id,
    jit_allow,
    jit_deny,
    nsg_resource,
    rest_rule,
    vm_record,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.jitaccess.azure.plugins.module_utils import _access
from ansible_collections.jitaccess.azure.plugins.module_utils import _nsg as nsg
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError

VNET = ("10.1.0.0/16",)


def rule(*args, **kwargs):
    return nsg.SecurityRule.from_azure(rest_rule(*args, **kwargs))


# --------------------------------------------------------------------------------------------------
# Port ranges


@pytest.mark.parametrize(
    ("value", "pair"),
    [("22", (22, 22)), (" 1000-2000 ", (1000, 2000)), ("1000 - 2000", (1000, 2000)), ("*", (0, 65535)), ("Any", (0, 65535)), (443, (443, 443)), ("0", (0, 0))],
)
def test_parse_port_range(value, pair):
    assert nsg.parse_port_range(value) == pair


@pytest.mark.parametrize("value", ["", "ssh", "2000-1000", "70000", "1-70000", "-1", "22,23", True, None])
def test_parse_port_range_rejects(value):
    with pytest.raises(JitValidationError, match="port range .* is not valid"):
        nsg.parse_port_range(value)


def test_parse_port_ranges_and_helpers():
    ranges = nsg.parse_port_ranges(["22", "3389", "5985-5986"])
    assert ranges == ((22, 22), (3389, 3389), (5985, 5986))
    assert nsg.parse_port_ranges("*") == ((0, 65535),)
    assert nsg.ports_in_ranges(5986, ranges)
    assert not nsg.ports_in_ranges(5987, ranges)
    assert nsg.ranges_overlap(ranges, [(5980, 5985)])
    assert not nsg.ranges_overlap(ranges, [(23, 3388)])


# --------------------------------------------------------------------------------------------------
# Rule model


def test_rule_from_rest_and_sdk_shapes_agree():
    rest = rest_rule("AllowSsh", 300, source=["52.0.0.0/8", "20.0.0.0/8"], ports=["22", "2222"], destination="10.1.0.4", description="ssh")
    rest["properties"]["sourceApplicationSecurityGroups"] = [{"id": "/ASG/One"}]
    sdk = {
        "name": "AllowSsh",
        "priority": 300,
        "access": "Allow",
        "protocol": "Tcp",
        "direction": "Inbound",
        "source_address_prefixes": ["52.0.0.0/8", "20.0.0.0/8"],
        "source_address_prefix": None,
        "source_port_range": "*",
        "destination_address_prefix": "10.1.0.4",
        "destination_port_ranges": ["22", "2222"],
        "description": "ssh",
        "source_application_security_groups": ["/asg/one"],
        "provisioning_state": "Succeeded",
    }
    from_rest = nsg.SecurityRule.from_azure(rest)
    from_sdk = nsg.SecurityRule.from_azure(sdk)
    assert from_rest == from_sdk
    assert from_rest.source_address_prefixes == ("52.0.0.0/8", "20.0.0.0/8")
    assert from_rest.destination_ranges == ((22, 22), (2222, 2222))
    assert from_rest.source_application_security_groups == ("/asg/one",)
    assert nsg.SecurityRule.from_azure(from_rest) is from_rest


def test_rule_defaults_and_as_dict():
    minimal = nsg.SecurityRule.from_azure({"name": "x", "properties": {"priority": "200"}})
    assert (minimal.priority, minimal.direction, minimal.access, minimal.protocol) == (200, "Inbound", "Allow", "*")
    assert minimal.source_address_prefixes == ()
    assert minimal.destination_port_ranges == ("*",)
    assert minimal.as_dict() == {
        "name": "x",
        "priority": 200,
        "direction": "Inbound",
        "access": "Allow",
        "protocol": "*",
        "source_address_prefixes": [],
        "destination_address_prefixes": [],
        "destination_port_ranges": ["*"],
        "description": "",
    }


def test_rule_rejects_bad_priority_and_ports():
    with pytest.raises(JitValidationError, match="security rule 'x' has priority 'high': expected an integer"):
        nsg.SecurityRule.from_azure({"name": "x", "properties": {"priority": "high"}})
    with pytest.raises(JitValidationError, match="expected an integer"):
        nsg.SecurityRule.from_azure({"name": "x"})
    with pytest.raises(JitValidationError, match="security rule 'x': port range 'ssh' is not valid"):
        nsg.SecurityRule.from_azure(rest_rule("x", 100, ports="ssh"))


@pytest.mark.parametrize(
    ("rule_protocol", "query", "covered"), [("*", "Udp", True), ("Any", "Tcp", True), ("Tcp", "tcp", True), ("TCP", "Tcp", True), ("Udp", "Tcp", False)]
)
def test_covers_protocol(rule_protocol, query, covered):
    assert rule("r", 100, protocol=rule_protocol).covers_protocol(query) is covered


@pytest.mark.parametrize(
    ("source_ports", "any_port"),
    [
        ("*", True),
        ("0-65535", True),
        (["0-1000", "1001-65535"], True),
        (["0-1000", "500-65535"], True),
        ("1024-65535", False),
        (["0-1000", "1002-65535"], False),
        ("0-65534", False),
    ],
)
def test_any_source_port(source_ports, any_port):
    assert rule("r", 100, source_ports=source_ports).any_source_port() is any_port


def test_default_rule_constants():
    assert [(r.name, r.priority, r.access) for r in nsg.DEFAULT_INBOUND_RULES] == [
        ("AllowVnetInBound", 65000, "Allow"),
        ("AllowAzureLoadBalancerInBound", 65001, "Allow"),
        ("DenyAllInBound", 65500, "Deny"),
    ]
    assert nsg.DEFAULT_INBOUND_RULES[0].source_address_prefixes == ("VirtualNetwork",)
    assert nsg.DEFAULT_INBOUND_RULES[0].destination_address_prefixes == ("VirtualNetwork",)
    assert nsg.DEFAULT_INBOUND_RULES[1].source_address_prefixes == ("AzureLoadBalancer",)
    assert all(r.is_default and r.is_inbound for r in nsg.DEFAULT_INBOUND_RULES)
    assert not any(r.is_inbound for r in nsg.DEFAULT_OUTBOUND_RULES)


def test_rules_from_nsg():
    listed = {"properties": {"securityRules": [rest_rule("a", 100)], "defaultSecurityRules": [rest_rule("DenyAllInBound", 65500, "Deny", ports="*")]}}
    rules = nsg.rules_from_nsg(listed)
    assert [(r.name, r.is_default) for r in rules] == [("a", False), ("DenyAllInBound", True)]
    sdk = {"security_rules": [{"name": "b", "priority": 110}]}
    rules = nsg.rules_from_nsg(sdk)
    assert rules[0].name == "b"
    assert rules[1:] == nsg.DEFAULT_INBOUND_RULES + nsg.DEFAULT_OUTBOUND_RULES
    assert nsg.rules_from_nsg({"properties": {}}) == nsg.DEFAULT_INBOUND_RULES + nsg.DEFAULT_OUTBOUND_RULES


# --------------------------------------------------------------------------------------------------
# Addresses


def test_address_context_rejects_bad_prefixes():
    for bad in ("nope", "2001:db8::/32"):
        with pytest.raises(JitValidationError, match="virtual network prefix .* is not valid"):
            nsg.AddressContext([bad])


@pytest.mark.parametrize(
    ("address", "internet"),
    [
        ("8.8.8.8", True),
        ("52.1.2.3", True),
        ("10.1.0.4", False),
        ("10.9.9.9", False),
        ("192.168.1.1", False),
        ("172.16.0.1", False),
        ("100.64.0.1", False),
        ("127.0.0.1", False),
        ("168.63.129.16", False),
        ("20.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_is_internet(address, internet):
    context = nsg.AddressContext(VNET, peered=["20.0.0.0/24"])
    assert context.is_internet(ipaddress.ip_address(address)) is internet


@pytest.mark.parametrize(
    ("token", "address", "destination", "matched"),
    [
        ("*", "8.8.8.8", False, True),
        ("Any", "8.8.8.8", False, True),
        ("Internet", "8.8.8.8", False, True),
        ("internet", "10.1.0.9", False, False),
        ("VirtualNetwork", "10.1.2.3", False, True),
        ("VirtualNetwork", "10.2.0.1", False, False),
        ("VirtualNetwork", "10.2.0.1", True, True),
        ("AzureLoadBalancer", "168.63.129.16", False, True),
        ("AzureLoadBalancer", "168.63.129.17", False, False),
        ("10.1.0.0/24", "10.1.0.4", False, True),
        ("10.1.0.4", "10.1.0.4", False, True),
        ("10.1.1.0/24", "10.1.0.4", False, False),
        ("AzureCloud", "52.1.1.1", False, False),
        ("2001:db8::/32", "10.1.0.4", False, False),
    ],
)
def test_context_matches(token, address, destination, matched):
    context = nsg.AddressContext(VNET)
    assert context.matches(token, ipaddress.ip_address(address), destination=destination) is matched


@pytest.mark.parametrize(
    ("tokens", "coverage"),
    [
        (["*"], ("all", ())),
        (["Internet"], ("all", ())),
        (["0.0.0.0/0"], ("all", ())),
        (["0.0.0.0/1", "128.0.0.0/1"], ("all", ())),
        (["52.0.0.0/8"], ("some", ("52.0.0.0/8",))),
        (["AzureCloud", "10.0.0.0/8"], ("some", ("AzureCloud",))),
        (["10.0.0.0/8", "VirtualNetwork", "AzureLoadBalancer", "2001:db8::/32", "192.168.0.0/16"], ("none", ())),
        ([], ("none", ())),
    ],
)
def test_internet_coverage(tokens, coverage):
    assert nsg.AddressContext(VNET).internet_coverage(tokens) == coverage


def test_internet_coverage_public_vnet_space():
    context = nsg.AddressContext(["52.0.0.0/8"])
    assert context.internet_coverage(["52.1.0.0/16"]) == ("none", ())
    # 0.0.0.0/1 + 128.0.0.0/1 minus the VNet still covers every Internet address
    assert context.internet_coverage(["0.0.0.0/1", "128.0.0.0/1"]) == ("all", ())
    assert context.internet_coverage(["0.0.0.0/1"]) == ("some", ("0.0.0.0/1",))


# --------------------------------------------------------------------------------------------------
# Evaluation: one NSG


def evaluate(rules, source, port=22, protocol="Tcp", **kwargs):
    kwargs.setdefault("context", VNET)
    return nsg.evaluate_inbound(rules, source, VM_IP, port, protocol, **kwargs)


@pytest.mark.parametrize(
    ("rules", "source", "port", "allowed", "deciding"),
    [
        ([], "8.8.8.8", 22, False, "DenyAllInBound"),
        ([], "10.1.5.5", 22, True, "AllowVnetInBound"),
        ([], "168.63.129.16", 22, True, "AllowAzureLoadBalancerInBound"),
        ([], "192.168.0.1", 22, False, "DenyAllInBound"),
        ([rest_rule("AllowSsh", 300)], "8.8.8.8", 22, True, "AllowSsh"),
        ([rest_rule("AllowSsh", 300)], "8.8.8.8", 23, False, "DenyAllInBound"),
        ([rest_rule("AllowSsh", 300), rest_rule("DenyFirst", 200, "Deny")], "8.8.8.8", 22, False, "DenyFirst"),
        ([rest_rule("AllowSsh", 300, source="52.0.0.0/8")], "8.8.8.8", 22, False, "DenyAllInBound"),
        ([rest_rule("AllowSsh", 300, source="52.0.0.0/8")], "52.9.9.9", 22, True, "AllowSsh"),
        ([rest_rule("AllowInternet", 300, source="Internet")], "52.9.9.9", 22, True, "AllowInternet"),
        ([rest_rule("AllowUdp", 300, protocol="Udp")], "52.9.9.9", 22, False, "DenyAllInBound"),
        ([rest_rule("DenyVnet", 300, "Deny", source="VirtualNetwork", ports="*")], "10.1.5.5", 22, False, "DenyVnet"),
        ([rest_rule("OtherVm", 300, destination="10.1.0.5")], "8.8.8.8", 22, False, "DenyAllInBound"),
        ([rest_rule("Subnet", 300, destination="10.1.0.0/24")], "8.8.8.8", 22, True, "Subnet"),
        ([rest_rule("VnetDest", 300, destination="VirtualNetwork")], "8.8.8.8", 22, True, "VnetDest"),
        # a client picks its source port: an allow of some source ports admits it (see the differential test)
        ([rest_rule("EphemeralOnly", 300, source_ports="1024-65535")], "8.8.8.8", 22, True, "EphemeralOnly"),
        ([rest_rule("Outbound", 300, direction="Outbound")], "8.8.8.8", 22, False, "DenyAllInBound"),
        ([rest_rule("Range", 300, ports=["20-30"])], "8.8.8.8", 22, True, "Range"),
    ],
)
def test_evaluate_concrete_source(rules, source, port, allowed, deciding):
    decision = evaluate(rules, source, port)
    assert decision.allowed is allowed
    assert decision.rule_name == deciding
    assert not decision.partial


def test_evaluate_records_level_and_nsg():
    decision = evaluate([], "8.8.8.8", level="nic", nsg="nsg-web")
    assert (decision.level, decision.nsg, decision.rule_priority, decision.rule_access, decision.present) == ("nic", "nsg-web", 65500, "Deny", True)
    assert decision.as_dict()["rule"] == "DenyAllInBound"


def test_evaluate_without_defaults_and_no_match_is_deny_without_rule():
    decision = evaluate([rest_rule("Other", 100, ports="80")], "8.8.8.8", include_defaults=False)
    assert not decision.allowed
    assert decision.rule_name is None


def test_listed_default_rules_replace_the_constants():
    rules = [nsg.SecurityRule.from_azure(rest_rule("DenyAllInBound", 65500, "Deny", ports="*", protocol="*"), is_default=True)]
    decision = evaluate(rules, "10.1.2.3")
    assert decision.rule_name == "DenyAllInBound"  # AllowVnetInBound not added again


def test_evaluate_destination_asg():
    allow = rest_rule("AsgAllow", 300, destination=[])
    allow["properties"]["destinationApplicationSecurityGroups"] = [{"id": "/ASG/web"}]
    assert evaluate([allow], "8.8.8.8", destination_asgs=["/asg/WEB"]).allowed
    assert not evaluate([allow], "8.8.8.8").allowed


def test_evaluate_context_object_or_none():
    context = nsg.AddressContext(VNET)
    assert evaluate([], "10.1.2.3", context=context).allowed
    assert not evaluate([], "10.1.2.3", context=None).allowed  # no VNet known: not VirtualNetwork


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "nope"}, "source 'nope' is not valid"),
        ({"source": "2001:db8::1"}, "source '2001:db8::1' is IPv6"),
        ({"destination": "x"}, "destination 'x' is not valid"),
        ({"port": 70000}, "port 70000 is out of range: allowed 0-65535"),
        ({"port": "22"}, "port '22' is out of range"),
        ({"protocol": "gre"}, "protocol 'gre' is not valid"),
    ],
)
def test_evaluate_rejects_bad_queries(kwargs, message):
    query = {"source": "8.8.8.8", "destination": VM_IP, "port": 22, "protocol": "Tcp"}
    query.update(kwargs)
    with pytest.raises(JitValidationError, match=message):
        nsg.evaluate_inbound([], query["source"], query["destination"], query["port"], query["protocol"])


def test_evaluate_internet_full_rules():
    assert evaluate([rest_rule("AllowAll", 300, source="0.0.0.0/0")], "Internet").allowed
    assert evaluate([rest_rule("AllowTag", 300, source="Internet")], "internet").rule_name == "AllowTag"
    denied = evaluate([], nsg.INTERNET_SOURCE)
    assert not denied.allowed
    assert not denied.exposed
    assert denied.rule_name == "DenyAllInBound"


def test_evaluate_internet_partial_exposure():
    rules = [
        rest_rule("AllowPartner", 200, source=["52.0.0.0/8", "10.0.0.0/8"]),
        rest_rule("AllowAzure", 210, source="AzureCloud"),
        rest_rule("AllowPartnerAgain", 220, source="52.0.0.0/8"),
        rest_rule("AllowVnetOnly", 230, source="VirtualNetwork"),
    ]
    decision = evaluate(rules, "Internet")
    assert not decision.allowed
    assert decision.partial and decision.exposed
    assert decision.admitted_prefixes == ("52.0.0.0/8", "AzureCloud")
    assert decision.admitting_rules == ("AllowPartner", "AllowAzure")
    assert decision.rule_name == "DenyAllInBound"


def test_evaluate_internet_partial_deny_shadows_narrower_allow():
    rules = [
        rest_rule("DenyBlock", 100, "Deny", source="52.0.0.0/8"),
        rest_rule("AllowInside", 200, source="52.1.0.0/16"),
        rest_rule("AllowOutside", 300, source="20.0.0.0/16"),
        rest_rule("DenyTag", 310, "Deny", source="AzureCloud"),
    ]
    decision = evaluate(rules, "Internet")
    assert decision.admitted_prefixes == ("20.0.0.0/16",)


def test_evaluate_internet_full_allow_after_partial_deny_is_allowed():
    rules = [rest_rule("DenyBlock", 100, "Deny", source="52.0.0.0/8"), rest_rule("AllowAll", 200)]
    decision = evaluate(rules, "Internet")
    assert decision.allowed and decision.admitted_prefixes == ()


# --------------------------------------------------------------------------------------------------
# Evaluation: the path


def test_path_without_nsgs_allows():
    decision = nsg.evaluate_inbound_path(None, None, "8.8.8.8", VM_IP, 22)
    assert decision.allowed
    assert decision.deciding is None
    assert [level.present for level in decision.levels] == [False, False]
    assert decision.as_dict()["deciding_level"] is None
    with pytest.raises(JitValidationError, match="port 70000"):
        nsg.evaluate_inbound_path(None, None, "8.8.8.8", VM_IP, 70000)


def test_path_subnet_then_nic():
    open_ssh = [rest_rule("AllowSsh", 300)]
    decision = nsg.evaluate_inbound_path(open_ssh, [], "8.8.8.8", VM_IP, 22, context=VNET, subnet_nsg="nsg-sub", nic_nsg="nsg-nic")
    assert not decision.allowed
    assert decision.deciding.level == "nic"
    assert decision.deciding.nsg == "nsg-nic"
    assert decision.deciding.rule_name == "DenyAllInBound"
    decision = nsg.evaluate_inbound_path([], open_ssh, "8.8.8.8", VM_IP, 22, context=VNET)
    assert decision.deciding.level == "subnet"
    decision = nsg.evaluate_inbound_path(open_ssh, open_ssh, "8.8.8.8", VM_IP, 22, context=VNET)
    assert decision.allowed
    assert decision.deciding.level == "nic"
    decision = nsg.evaluate_inbound_path(open_ssh, None, "8.8.8.8", VM_IP, 22, context=VNET)
    assert decision.allowed
    assert decision.deciding.level == "subnet"
    summary = decision.as_dict()
    assert summary["deciding_rule"] == "AllowSsh"
    assert [level["level"] for level in summary["levels"]] == ["subnet", "nic"]


def test_path_partial_exposure_combines_levels():
    partner = [rest_rule("AllowPartner", 300, source=["52.0.0.0/8", "AzureCloud", "20.0.0.0/8"])]
    narrower = [rest_rule("AllowNarrow", 300, source=["52.1.0.0/16", "AzureCloud", "30.0.0.0/8"])]
    open_ssh = [rest_rule("AllowSsh", 300)]
    kwargs = {"context": VNET}
    assert nsg.evaluate_inbound_path(open_ssh, partner, "Internet", VM_IP, 22, **kwargs).admitted_prefixes == ("52.0.0.0/8", "AzureCloud", "20.0.0.0/8")
    assert nsg.evaluate_inbound_path(partner, None, "Internet", VM_IP, 22, **kwargs).admitted_prefixes == ("52.0.0.0/8", "AzureCloud", "20.0.0.0/8")
    both = nsg.evaluate_inbound_path(partner, narrower, "Internet", VM_IP, 22, **kwargs)
    assert not both.allowed and both.partial and both.exposed
    assert both.admitted_prefixes == ("52.1.0.0/16", "AzureCloud")
    reverse = nsg.evaluate_inbound_path(narrower, partner, "Internet", VM_IP, 22, **kwargs)
    assert reverse.admitted_prefixes == ("52.1.0.0/16", "AzureCloud")
    closed = nsg.evaluate_inbound_path(partner, [], "Internet", VM_IP, 22, **kwargs)
    assert not closed.exposed
    # a concrete source never reports partial exposure
    assert nsg.evaluate_inbound_path(partner, [], "8.8.8.8", VM_IP, 22, **kwargs).admitted_prefixes == ()


# --------------------------------------------------------------------------------------------------
# JIT rules


@pytest.mark.parametrize(
    ("name", "kind", "generation", "number"),
    [
        (DENY_NAME, "deny", "MicrosoftDefenderForCloud", -1906413329),
        ("SecurityCenter-JITRule_1234_ABCDEF0123", "deny", "SecurityCenter", 1234),
        ("securitycenter-jitrule_-5_abc", "deny", "SecurityCenter", -5),
        (ALLOW_NAME, "allow", "MicrosoftDefenderForCloud", 1235477045),
        ("SecurityCenter-JITRule--77-5d3f2f6f-0b5e-4c43-9f10-2f1b0c6d7a11", "allow", "SecurityCenter", -77),
        ("MicrosoftDefenderForCloud-JITRule-0-5d3f2f6f0b5e4c439f102f1b0c6d7a11", "allow", "MicrosoftDefenderForCloud", 0),
    ],
)
def test_classify_jit_rule_by_name(name, kind, generation, number):
    info = nsg.classify_jit_rule(name)
    assert (info.kind, info.generation, info.number) == (kind, generation, number)
    assert info.policy is None


@pytest.mark.parametrize(
    "name", ["AllowSsh", "MicrosoftDefenderForCloud-JITRule", "MicrosoftDefenderForCloud-JITRule_x_abc", "SecurityCenter-JITRule_12_xyz", "Other-JITRule_1_abc"]
)
def test_classify_non_jit_names(name):
    assert nsg.classify_jit_rule(name) is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (DENY_DESCRIPTION, ("default", "web-1", False)),
        (ALLOW_DESCRIPTION, ("default", "web-1", True)),
        ("ASC JIT Network Access rule for policy 'ops' of VM 'db'.", ("ops", "db", False)),
        ("ASC JIT Network Access rule created by an initiation request for policy 'ops' of VM 'db'", ("ops", "db", True)),
        ("mdc jit network access rule for policy 'a b' of VM 'c'.", ("a b", "c", False)),
        ("allow ssh", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_jit_description(text, parsed):
    assert nsg.parse_jit_description(text) == parsed


def test_classify_rule_dicts_and_description_fallback():
    deny = nsg.classify_jit_rule(jit_deny())
    assert (deny.kind, deny.policy, deny.vm) == ("deny", "default", "web-1")
    allow = nsg.classify_jit_rule(nsg.SecurityRule.from_azure(jit_allow()))
    assert (allow.kind, allow.policy) == ("allow", "default")
    renamed = rest_rule("custom-name", 100, description=ALLOW_DESCRIPTION)
    assert nsg.classify_jit_rule(renamed) == nsg.JitRuleInfo("allow", None, None, None, "default", "web-1")
    assert nsg.classify_jit_rule("custom", description=DENY_DESCRIPTION).kind == "deny"
    assert nsg.classify_jit_rule(rest_rule("plain", 100)) is None
    assert nsg.is_jit_deny_rule(jit_deny()) and not nsg.is_jit_allow_rule(jit_deny())
    assert nsg.is_jit_allow_rule(jit_allow()) and not nsg.is_jit_deny_rule(jit_allow())
    assert not nsg.is_jit_allow_rule(rest_rule("plain", 100))


def names(found):
    return [r.name for r in found]


def test_find_jit_rules():
    other_allow = jit_allow(priority=101, port="3389", source="198.51.100.1", name=ALLOW_NAME.replace("1235477045", "7"))
    other_vm = jit_deny(priority=4095, destination="10.1.0.9", name=DENY_NAME.replace("-1906413329", "9"))
    outbound = rest_rule("SecurityCenter-JITRule_1_ab", 4000, "Deny", direction="Outbound")
    rules = [jit_deny(), jit_allow(), other_allow, other_vm, outbound, rest_rule("AllowSsh", 300)]
    assert names(nsg.find_jit_rules(rules)) == [ALLOW_NAME, other_allow["name"], other_vm["name"], DENY_NAME]
    assert names(nsg.find_jit_rules(rules, kind="deny", destination=VM_IP)) == [DENY_NAME]
    assert names(nsg.find_jit_rules(rules, kind="allow", ports=[22])) == [ALLOW_NAME]
    assert names(nsg.find_jit_rules(rules, kind="allow", destination=VM_IP, ports=[22, 3389], sources=["198.51.100.1"])) == [other_allow["name"]]
    assert nsg.find_jit_rules(rules, kind="allow", ports=[5985]) == []


def test_jit_bypass_not_protected():
    assert nsg.jit_bypass([rest_rule("AllowSsh", 300)], VM_IP, 22, context=VNET) == nsg.JitBypass(False, False, None, (), ())
    with pytest.raises(JitValidationError, match="protocol"):
        nsg.jit_bypass([], VM_IP, 22, protocol="bogus")


def test_jit_bypass_by_higher_precedence_allow():
    result = nsg.jit_bypass([rest_rule("AllowSsh", 300), jit_deny()], VM_IP, 22, context=VNET)
    assert result == nsg.JitBypass(True, True, DENY_NAME, ("AllowSsh",), ())


def test_jit_not_bypassed_when_allow_is_after_deny_or_only_jit_allow():
    assert nsg.jit_bypass([rest_rule("AllowSsh", 4097), jit_deny(4000)], VM_IP, 22, context=VNET) == nsg.JitBypass(True, False, DENY_NAME, (), ())
    assert not nsg.jit_bypass([jit_allow(source="*"), jit_deny()], VM_IP, 22, context=VNET).bypassed
    assert not nsg.jit_bypass([rest_rule("AllowVnet", 300, source="10.0.0.0/8"), jit_deny()], VM_IP, 22, context=VNET).bypassed
    assert not nsg.jit_bypass([rest_rule("DenyAll", 200, "Deny", ports="*"), rest_rule("AllowSsh", 300), jit_deny()], VM_IP, 22, context=VNET).bypassed


def test_jit_partial_bypass():
    rules = [rest_rule("AllowPartner", 300, source="52.0.0.0/8"), jit_deny()]
    result = nsg.jit_bypass(rules, VM_IP, 22, context=VNET)
    assert result == nsg.JitBypass(True, True, DENY_NAME, ("AllowPartner",), ("52.0.0.0/8",))


def test_jit_bypass_other_port_and_protocol():
    rules = [rest_rule("AllowUdp", 300, protocol="Udp", ports="3389"), jit_deny()]
    assert nsg.jit_bypass(rules, VM_IP, 3389, protocol="Udp", context=VNET).bypassed
    assert not nsg.jit_bypass(rules, VM_IP, 3389, context=VNET).bypassed
    assert not nsg.jit_bypass(rules, VM_IP, 5985, context=VNET).protected


# --------------------------------------------------------------------------------------------------
# Priorities


def test_rule_room_names_the_limit_that_stops_jit():
    def full_nsg(count, start=100):
        return nsg_resource(NSG_NIC, *(rest_rule(f"r{index}", start + index) for index in range(count)))

    assert nsg.rule_room(full_nsg(998), 2) is None
    assert nsg.rule_room(full_nsg(1000), 0) is None
    assert nsg.rule_room(full_nsg(999), 2) == "it has 999 security rules and Azure allows 1000 per NSG"
    crowded = full_nsg(3997)  # every inbound priority 100-4096 (beyond Azure's rule limit: armsim allows it)
    assert nsg.rule_room(crowded, 1).startswith("it has 3997 security rules")
    outbound_only = nsg_resource(NSG_NIC, *(rest_rule(f"o{index}", 100 + index, direction="Outbound") for index in range(900)))
    assert nsg.rule_room(outbound_only, 100) is None


def test_rule_room_counts_free_inbound_priorities(monkeypatch):
    monkeypatch.setattr(nsg, "NSG_RULE_LIMIT", 10_000)  # only the priorities matter here
    taken = nsg_resource(NSG_NIC, *(rest_rule(f"r{index}", 100 + index) for index in range(3996)))
    assert nsg.rule_room(taken, 1) is None
    assert nsg.rule_room(taken, 2) == "it has 1 free inbound priorities (100-4096)"


# --------------------------------------------------------------------------------------------------
# Properties

SOURCES = ["*", "Internet", "VirtualNetwork", "AzureLoadBalancer", "10.0.0.0/8", "52.0.0.0/8", "52.1.0.0/16", "AzureCloud", "0.0.0.0/0", "168.63.129.16"]
DESTINATIONS = ["*", VM_IP, "10.1.0.0/24", "VirtualNetwork", "10.2.0.0/16"]
PORTS = ["*", "22", "3389", "20-30", "1000-2000"]


@st.composite
def rule_sets(draw, min_size=0, max_size=8):
    priorities = draw(st.lists(st.integers(100, 4096), min_size=min_size, max_size=max_size, unique=True))
    rules = []
    for priority in priorities:
        rules.append(
            rest_rule(
                f"r{priority}",
                priority,
                draw(st.sampled_from(["Allow", "Deny"])),
                draw(st.lists(st.sampled_from(SOURCES), min_size=1, max_size=2, unique=True)),
                draw(st.sampled_from(PORTS)),
                draw(st.sampled_from(DESTINATIONS)),
                draw(st.sampled_from(["*", "Tcp", "Udp"])),
            )
        )
    return rules


query_sources = st.sampled_from(["Internet", "8.8.8.8", "52.1.2.3", "10.1.9.9", "168.63.129.16", "192.168.4.4"])
query_ports = st.sampled_from([22, 25, 3389, 1500, 8080])


@settings(max_examples=150)
@given(rule_sets(), query_sources, query_ports, st.randoms(use_true_random=False))
def test_evaluation_independent_of_rule_order(rules, source, port, random):
    shuffled = list(rules)
    random.shuffle(shuffled)
    assert evaluate(rules, source, port) == evaluate(shuffled, source, port)


@settings(max_examples=150)
@given(rule_sets(), query_sources, query_ports, st.sampled_from(["Allow", "Deny"]), st.sampled_from(SOURCES), st.integers(1, 60000))
def test_lower_precedence_rule_never_changes_a_decision(rules, source, port, access, extra_source, offset):  # noqa: PLR0917
    decision = evaluate(rules, source, port)
    if decision.rule_priority is None:
        return
    extra = rest_rule("late", decision.rule_priority + offset, access, extra_source, "*", "*", "*")
    assert evaluate([*rules, extra], source, port) == decision


@settings(max_examples=150)
@given(rule_sets(), query_ports)
def test_symbolic_internet_agrees_with_an_unlisted_public_address(rules, port):
    symbolic = evaluate(rules, "Internet", port)
    concrete = evaluate(rules, "8.8.8.8", port)  # in no specific prefix of the strategy
    assert symbolic.allowed == concrete.allowed
    assert symbolic.rule_name == concrete.rule_name


@settings(max_examples=150)
@given(rule_sets(), query_ports)
def test_listed_public_address_admitted_implies_exposure(rules, port):
    symbolic = evaluate(rules, "Internet", port)
    if evaluate(rules, "52.1.2.3", port).allowed:
        assert symbolic.exposed


@settings(max_examples=100)
@given(st.one_of(st.none(), rule_sets()), st.one_of(st.none(), rule_sets()), query_sources, query_ports)
def test_path_allows_only_if_both_levels_allow(subnet, nic, source, port):
    path = nsg.evaluate_inbound_path(subnet, nic, source, VM_IP, port, context=VNET)
    levels = [nsg.evaluate_inbound(rules, source, VM_IP, port, context=VNET) if rules is not None else None for rules in (subnet, nic)]
    assert path.allowed == all(level is None or level.allowed for level in levels)
    if path.allowed:
        assert path.admitted_prefixes == ()
    elif path.partial:
        assert all(level is None or level.exposed for level in levels)


# --------------------------------------------------------------------------------------------------
# A VM's path and the JIT allow rules on it


def test_source_tokens():
    assert nsg.source_token("10.0.0.1") == nsg.source_token("10.0.0.1/32")
    assert nsg.source_token("Internet") == "*"
    assert nsg.source_set(["10.0.0.0/24", "Tag"]) == frozenset({"10.0.0.0/24", "tag"})


def test_prefix_contains():
    assert nsg.prefix_contains("10.1.0.0/24", VM_IP) and nsg.prefix_contains(" 10.1.0.4 ", VM_IP)
    assert not nsg.prefix_contains("10.1.1.0/24", VM_IP)
    assert not nsg.prefix_contains("*", VM_IP) and not nsg.prefix_contains("VirtualNetwork", VM_IP)


def test_find_jit_rules_compares_sources_by_address():
    rules = [jit_allow(source="203.0.113.7/32")]
    assert names(nsg.find_jit_rules(rules, kind="allow", sources=["203.0.113.7"])) == [ALLOW_NAME]
    assert nsg.find_jit_rules(rules, kind="allow", sources=["203.0.113.0/24"]) == []


def test_vm_paths_group_the_ips_behind_each_nsg():
    two = vm_record()
    two["nics"].append({"private_ip": "10.1.1.4", "nic_nsg_id": NSG_NIC.upper(), "subnet_nsg_id": None})
    two["nics"].append({"private_ip": None, "nic_nsg_id": NSG_NIC, "subnet_nsg_id": NSG_SUBNET})
    assert nsg.vm_paths(two) == {NSG_SUBNET.lower(): (NSG_SUBNET, [VM_IP]), NSG_NIC.lower(): (NSG_NIC, [VM_IP, "10.1.1.4"])}
    # records without per-NIC NSG ids: every private IP is behind each NSG
    flat = {"nics": [{"private_ip": VM_IP}, {"private_ip": "10.1.1.4"}], "nsg_ids": [NSG_SUBNET]}
    assert nsg.vm_paths(flat) == {NSG_SUBNET.lower(): (NSG_SUBNET, [VM_IP, "10.1.1.4"])}
    assert nsg.vm_paths({}) == {}


def test_path_pairs_subnet_first_and_deduplicated():
    assert nsg.path_pairs(vm_record()) == [(NSG_SUBNET, VM_IP), (NSG_NIC, VM_IP)]
    assert nsg.path_pairs(vm_record(nic_nsg=None)) == [(NSG_SUBNET, VM_IP)]
    assert nsg.path_pairs(vm_record(subnet_nsg=NSG_NIC)) == [(NSG_NIC, VM_IP)]
    two = vm_record()
    two["nics"].append({"private_ip": "10.1.1.4", "nic_nsg_id": NSG_NIC, "subnet_nsg_id": None})
    assert nsg.path_pairs(two) == [(NSG_SUBNET, VM_IP), (NSG_NIC, VM_IP), (NSG_NIC, "10.1.1.4")]


def test_allow_rules_match_port_destination_and_source():
    group = nsg_resource(
        NSG_NIC,
        jit_deny(ports=("22",)),
        jit_allow(100),
        jit_allow(101, source="198.51.100.1", name=SECOND_ALLOW_NAME),
        rest_rule("AllowHttps", 300, ports="443", destination=VM_IP, description=ALLOW_DESCRIPTION),
        jit_allow(102, destination="10.1.0.99", name="MicrosoftDefenderForCloud-JITRule-5-BBBB"),
    )
    assert [r.name for r, _raw in _access.allow_rules(group, VM_IP, 22)] == [ALLOW_NAME, SECOND_ALLOW_NAME]
    assert [r.name for r, _raw in _access.allow_rules(group, VM_IP, 22, ["203.0.113.7/32"])] == [ALLOW_NAME]
    assert _access.allow_rules(group, VM_IP, 3389) == []


def test_allow_rules_found_by_address_equal_a_scan_of_every_rule():
    """Rules are looked up by destination address (a subnet NSG holds one per VM); a rule for a range
    or a tag is still checked for every address."""
    rules = [jit_allow(100 + n, destination="10.1.0.%d" % (10 + n), name="MicrosoftDefenderForCloud-JITRule-%d-AAAA" % n) for n in range(50)]
    rules += [
        jit_allow(200, destination="10.1.0.20/32", name="MicrosoftDefenderForCloud-JITRule-200-HOST"),
        jit_allow(201, destination="10.1.0.0/24", name="MicrosoftDefenderForCloud-JITRule-201-WIDE"),
        jit_allow(202, destination="VirtualNetwork", name="MicrosoftDefenderForCloud-JITRule-202-TAG"),
    ]
    group = nsg_resource(NSG_SUBNET, *rules)
    parsed = [nsg.SecurityRule.from_azure(raw) for raw in rules]
    for address in ("10.1.0.10", "10.1.0.20", "10.1.0.59", "10.1.0.200", "10.2.0.1"):
        scanned = [rule.name for rule in nsg.find_jit_rules(parsed, kind="allow", destination=address, ports=[22])]
        assert [rule.name for rule, _raw in _access.allow_rules(group, address, 22)] == scanned
    assert {r.name for r, _raw in _access.allow_rules(group, "10.1.0.20", 22)} == {
        "MicrosoftDefenderForCloud-JITRule-10-AAAA",
        "MicrosoftDefenderForCloud-JITRule-200-HOST",
        "MicrosoftDefenderForCloud-JITRule-201-WIDE",
        "MicrosoftDefenderForCloud-JITRule-202-TAG",
    }
    with pytest.raises(JitValidationError):
        _access.allow_rules(group, "not-an-address", 22)


def test_deny_rules_and_missing_deny_ports_by_address():
    """Drift and room for deny rules (jit_policy) use the same lookup by address: each VM's own deny
    rule, plus any that covers a range; the ports no deny rule covers are missing."""
    rules = [jit_deny(4000 + n, ports=("22",), destination="10.1.0.%d" % (10 + n), name="MicrosoftDefenderForCloud-JITRule_%d_DENY" % n) for n in range(40)]
    rules.append(jit_deny(4090, ports=("3389",), destination="10.1.0.0/24", name="MicrosoftDefenderForCloud-JITRule_90_WIDE"))
    rules.append(jit_allow(100, destination="10.1.0.10"))
    group = nsg_resource(NSG_SUBNET, *rules)
    assert [r.name for r in _access.deny_rules(group, "10.1.0.10")] == ["MicrosoftDefenderForCloud-JITRule_0_DENY", "MicrosoftDefenderForCloud-JITRule_90_WIDE"]
    assert _access.missing_deny_ports(group, "10.1.0.10", [22, 3389, 5985]) == [5985]
    assert _access.missing_deny_ports(group, "10.1.0.99", [22, 3389]) == [22]  # only the range covers it
    assert _access.missing_deny_ports(group, "10.2.0.1", [22]) == [22]


def test_access_on_path_reports_missing_and_excludes_baseline():
    subnet = nsg_resource(NSG_SUBNET, jit_allow(etag='W/"1"'))
    nic = nsg_resource(NSG_NIC)
    access, missing = _access.access_on_path(nsg.path_pairs(vm_record()), by_id(subnet, nic), 22, ["203.0.113.7"])
    assert access == [
        {
            "id": NSG_SUBNET + "/securityRules/" + ALLOW_NAME,
            "nsg_id": NSG_SUBNET,
            "name": ALLOW_NAME,
            "priority": 100,
            "source_address_prefixes": ["203.0.113.7"],
            "destination_address_prefixes": [VM_IP],
        }
    ]
    assert missing == [(NSG_NIC, VM_IP)]
    baseline = _access.baseline_fingerprints(nsg.path_pairs(vm_record()), by_id(subnet, nic), 22)
    assert baseline == {(ALLOW_NAME.lower(), 'W/"1"')}
    _found, missing = _access.access_on_path(nsg.path_pairs(vm_record(nic_nsg=None)), by_id(subnet), 22, None, exclude=baseline)
    assert missing == [(NSG_SUBNET, VM_IP)]
    # the same rule rewritten (new etag) counts as the new request's rule
    rewritten = nsg_resource(NSG_SUBNET, jit_allow(etag='W/"2"'))
    _found, missing = _access.access_on_path(nsg.path_pairs(vm_record(nic_nsg=None)), by_id(rewritten), 22, None, exclude=baseline)
    assert missing == []


@given(st.text(max_size=12))
def test_port_ranges_fail_only_with_the_validation_error(text):
    try:
        low, high = nsg.parse_port_range(text)
    except JitValidationError:
        return
    assert 0 <= low <= high <= 65535


@pytest.mark.parametrize("value", ["٢٢", "２２", "22-٢٥", "999999", "1" * 5000])
def test_port_ranges_refuse_unicode_digits_and_long_numbers(value):
    with pytest.raises(JitValidationError, match="is not valid"):
        nsg.parse_port_range(value)


# --------------------------------------------------------------------------------------------------
# Differential: the collection's evaluator against armsim's, written separately from Microsoft's
# documented NSG semantics (tools/armsim/nsgeval.py). Random NSG pairs over every field of a rule;
# every (source, port) verdict must agree, or, where a rule limits source ports (an attacker picks
# their own), the collection must not call reachable traffic blocked.

DIFF_VNET = "10.1.0.0/16"
DIFF_VM = "10.1.0.4"
PUBLIC_SOURCES = ("203.0.113.7", "203.0.113.200", "198.51.100.1", "8.8.8.8", "200.1.2.3", "128.0.0.1", "126.255.255.254")
OTHER_SOURCES = ("10.1.0.9", "10.1.200.1", "168.63.129.16")
SOURCE_PORTS = (1, 80, 443, 1024, 40000, 65535)
PREFIXES = ("0.0.0.0/1", "128.0.0.0/1", "203.0.113.0/24", "203.0.113.7", "203.0.113.7/32", "198.51.100.0/25", "10.1.0.0/16", "10.1.0.9", "8.0.0.0/7")
TAGS = ("*", "Internet", "VirtualNetwork", "AzureLoadBalancer")  # "Any" and other tags: below
DESTINATIONS = ("*", "VirtualNetwork", DIFF_VM, "10.1.0.0/24", "10.1.0.9", "10.1.0.0/16", "Internet")
PORT_RANGES = ("*", "22", "3389", "20-30", "3000-4000", "1-21", "23-65535", "0-65535")

addresses = st.sampled_from(PREFIXES + TAGS)
port_ranges = st.sampled_from(PORT_RANGES)


def _one_or_many(draw, field, values):
    if draw(st.booleans()):
        return {field: draw(values)}
    return {field + "es" if field.endswith("Prefix") else field + "s": draw(st.lists(values, min_size=1, max_size=3, unique=True))}


@st.composite
def security_rule(draw, priority):
    props = {
        "priority": priority,
        "direction": draw(st.sampled_from(["Inbound", "Inbound", "Inbound", "Outbound"])),
        "access": draw(st.sampled_from(["Allow", "Deny"])),
        "protocol": draw(st.sampled_from(["Tcp", "Udp", "*", "Icmp", "Tcp"])),
    }
    props.update(_one_or_many(draw, "sourceAddressPrefix", addresses))
    props.update(_one_or_many(draw, "destinationAddressPrefix", st.sampled_from(DESTINATIONS)))
    props.update(_one_or_many(draw, "destinationPortRange", port_ranges))
    props.update(_one_or_many(draw, "sourcePortRange", st.sampled_from(("*", "*", "*", "80", "1024-65535", "443"))))
    return {"name": "r%d" % priority, "properties": props}


@st.composite
def nsg_rules(draw):
    if draw(st.integers(0, 5)) == 0:
        return None  # no NSG at this level
    priorities = draw(st.lists(st.integers(100, 4096), max_size=6, unique=True))
    return [draw(security_rule(priority)) for priority in priorities]


def _armsim_allows(levels, source, port, source_port):
    from armsim import nsgeval
    from armsim.model import Rule

    for rules in levels:
        if rules is None:
            continue
        custom = [Rule(rule["name"], rule["properties"]) for rule in rules]
        allowed, _rule = nsgeval.evaluate_nsg(
            custom, src=source, src_port=source_port, dst=DIFF_VM, dst_port=port, protocol="Tcp", vnet_spaces=[ipaddress.ip_network(DIFF_VNET)]
        )
        if not allowed:
            return False
    return True


def _restricts_source_ports(levels):
    return any(
        set(rule["properties"].get("sourcePortRanges") or [rule["properties"].get("sourcePortRange")]) != {"*"} for rules in levels if rules for rule in rules
    )


@settings(max_examples=400)
@given(nsg_rules(), nsg_rules(), st.sampled_from((22, 3389)))
def test_verdicts_agree_with_an_independent_evaluator(subnet, nic, port):
    context = nsg.AddressContext([DIFF_VNET])
    restricted = _restricts_source_ports((subnet, nic))
    for source in PUBLIC_SOURCES + OTHER_SOURCES:
        ours = nsg.evaluate_inbound_path(subnet, nic, source, DIFF_VM, port, context=context).allowed
        theirs = any(_armsim_allows((subnet, nic), source, port, source_port) for source_port in SOURCE_PORTS)
        if restricted:
            assert ours or not theirs, "reachable from %s port %s (some source port) but reported blocked" % (source, port)
        else:
            assert ours == theirs, "from %s to port %s: collection %s, armsim %s" % (source, port, ours, theirs)
    internet = nsg.evaluate_inbound_path(subnet, nic, nsg.INTERNET_SOURCE, DIFF_VM, port, context=context)
    reachable = [source for source in PUBLIC_SOURCES if any(_armsim_allows((subnet, nic), source, port, sp) for sp in SOURCE_PORTS)]
    if reachable:
        assert internet.exposed, "public sources %s reach port %s but the Internet verdict says not exposed" % (reachable, port)
    if internet.allowed and not restricted:
        # "the whole Internet" also when earlier deny rules took a part of it (docs/nsg_jit_facts.md);
        # source ports are judged per level, so across levels the verdict may say more, never less
        assert reachable, "'the whole Internet' but no public source reaches port %s" % port


def test_where_the_documentation_is_silent_the_verdict_does_not_hide_exposure():
    """Disagreements with armsim's evaluator, settled (docs/nsg_jit_facts.md, "Verdicts")."""
    context = nsg.AddressContext(["10.1.0.0/16"])

    def allowed(rule, source="203.0.113.7"):
        base = {"priority": 100, "direction": "Inbound", "protocol": "Tcp", "destinationAddressPrefix": "*", "destinationPortRange": "22"}
        return nsg.evaluate_inbound_path(None, [{"name": "r", "properties": dict(base, **rule)}], source, "10.1.0.4", 22, context=context)

    # An allow limited to some source ports admits a client that picks one (armsim asks one port).
    assert allowed({"access": "Allow", "sourceAddressPrefix": "*", "sourcePortRange": "80"}).allowed
    # A deny limited to some source ports does not stop a client that picks another.
    deny_some = {"access": "Deny", "sourceAddressPrefix": "*", "sourcePortRanges": ["80", "443"]}
    assert not allowed(deny_some).allowed  # nothing else admits it: DenyAllInBound decides
    assert allowed(deny_some).deciding.rule_name == "DenyAllInBound"
    # "Any" as an address prefix (the portal's word for *) admits every source (armsim: no match).
    assert allowed({"access": "Allow", "sourceAddressPrefix": "Any", "sourcePortRange": "*"}).allowed
    # A service tag the evaluator does not know (AzureCloud: every Azure public range) counts as
    # admitting part of the Internet, never as admitting nothing.
    internet = allowed({"access": "Allow", "sourceAddressPrefix": "AzureCloud", "sourcePortRange": "*"}, source=nsg.INTERNET_SOURCE)
    assert internet.exposed and internet.admitted_prefixes == ("AzureCloud",)
