# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.jitaccess.azure.plugins.module_utils import _jit as jit
from ansible_collections.jitaccess.azure.plugins.module_utils._jit import JitValidationError

UTC = timezone.utc  # noqa: UP017
SUB = "00000000-0000-0000-0000-000000000001"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def vm(name, rg="rg-web", sub=SUB):
    return jit.vm_id(sub, rg, name)


def entry(name, ports=None, **extra):
    result = {
        "id": vm(name),
        "ports": ports if ports is not None else [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}],
    }
    result.update(extra)
    return result


# --------------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT3H", 10800),
        ("PT180M", 10800),
        ("PT1H30M", 5400),
        ("PT3600S", 3600),
        ("P1D", 86400),
        ("P0DT2H", 7200),
        ("pt5m", 300),
        ("P1DT1H1M1S", 90061),
        ("3h", 10800),
        ("90m", 5400),
        ("1h30m", 5400),
        ("1H 30M", 5400),
        ("300s", 300),
        ("1d", 86400),
        ("1d2h3m4s", 93784),
        (" 2h ", 7200),
        ("600", 600),
        (600, 600),
        (0, 0),
    ],
)
def test_parse_duration_accepts(text, seconds):
    assert jit.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "PT1", "1x", "h", "3 hours", "PT0.5S", "PTH", "P1DT", "30m1h", None, 1.5, [], True])
def test_parse_duration_rejects(text):
    with pytest.raises(JitValidationError, match="duration"):
        jit.parse_duration(text)


@pytest.mark.parametrize("text", ["P1Y", "P2M", "P1W", "P1Y2M", "p1w"])
def test_parse_duration_calendar_units_explained(text):
    with pytest.raises(JitValidationError, match="years, months or weeks"):
        jit.parse_duration(text)


def test_parse_duration_negative_int():
    with pytest.raises(JitValidationError, match="negative"):
        jit.parse_duration(-5)


def test_parse_duration_names_option():
    with pytest.raises(JitValidationError, match=r"^max_request_access_duration 'soon' is not a valid duration"):
        jit.parse_duration("soon", name="max_request_access_duration")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "PT0S"), (59, "PT59S"), (300, "PT5M"), (3600, "PT1H"), (3601, "PT1H1S"), (5400, "PT1H30M"), (86400, "PT24H"), (90061, "PT25H1M1S")],
)
def test_format_duration(seconds, text):
    assert jit.format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, 1.5, "60", True, None])
def test_format_duration_rejects(bad):
    with pytest.raises(JitValidationError, match="cannot be formatted"):
        jit.format_duration(bad)


def test_ptm_equals_pth_after_normalisation():
    assert jit.normalize_duration("PT180M") == jit.normalize_duration("PT3H") == jit.normalize_duration("3h") == "PT3H"


@pytest.mark.parametrize(("value", "canonical"), [("5m", "PT5M"), ("PT24H", "PT24H"), ("P1D", "PT24H"), ("86400", "PT24H"), (300, "PT5M")])
def test_normalize_duration_bounds_inclusive(value, canonical):
    assert jit.normalize_duration(value) == canonical


def test_normalize_duration_too_long_message():
    with pytest.raises(JitValidationError) as info:
        jit.normalize_duration("25h")
    assert str(info.value) == "max_request_access_duration '25h' (PT25H) is out of range: allowed PT5M (5 minutes) to PT24H (24 hours)"


def test_normalize_duration_too_short_message_canonical_input():
    with pytest.raises(JitValidationError) as info:
        jit.normalize_duration("PT4M", name="max")
    assert str(info.value) == "max PT4M is out of range: allowed PT5M (5 minutes) to PT24H (24 hours)"


def test_check_duration_bounds_without_shown_value():
    assert jit.check_duration_bounds(600) == 600
    with pytest.raises(JitValidationError, match="PT1H1S is out of range: allowed PT1M .1 minute. to PT1H .1 hour."):
        jit.check_duration_bounds(3601, minimum=60, maximum=3600)


@pytest.mark.parametrize(("seconds", "words"), [(0, "0 seconds"), (1, "1 second"), (3661, "1 hour 1 minute 1 second"), (7320, "2 hours 2 minutes")])
def test_describe_duration(seconds, words):
    assert jit.describe_duration(seconds) == words


def test_canonical_duration_is_lenient():
    assert jit.canonical_duration("PT180M") == "PT3H"
    assert jit.canonical_duration("garbage") == "garbage"


@given(st.integers(min_value=0, max_value=10 * 86400))
def test_parse_format_roundtrip(seconds):
    assert jit.parse_duration(jit.format_duration(seconds)) == seconds


@given(st.integers(0, 30), st.integers(0, 48), st.integers(0, 600), st.integers(0, 6000))
def test_iso_and_short_forms_agree(days, hours, minutes, seconds):
    iso = f"P{days}DT{hours}H{minutes}M{seconds}S"
    short = f"{days}d{hours}h{minutes}m{seconds}s"
    expected = days * 86400 + hours * 3600 + minutes * 60 + seconds
    assert jit.parse_duration(iso) == jit.parse_duration(short) == expected
    assert jit.format_duration(expected) == jit.format_duration(jit.parse_duration(jit.format_duration(expected)))


# --------------------------------------------------------------------------------------------------
# Ports, protocols, prefixes


@pytest.mark.parametrize(("value", "number"), [(0, 0), (22, 22), ("3389", 3389), (" 65535 ", 65535)])
def test_validate_port_number(value, number):
    assert jit.validate_port_number(value) == number


def test_validate_port_number_out_of_range_message():
    with pytest.raises(JitValidationError) as info:
        jit.validate_port_number(70000)
    assert str(info.value) == "port 70000 is out of range: allowed 0-65535"


@pytest.mark.parametrize("value", [-1, "-1", "ssh", True, None, 22.0])
def test_validate_port_number_rejects(value):
    with pytest.raises(JitValidationError, match="allowed 0-65535"):
        jit.validate_port_number(value)


@pytest.mark.parametrize(("value", "canonical"), [("tcp", "TCP"), ("Tcp", "TCP"), (" udp ", "UDP"), ("*", "*")])
def test_normalize_protocol(value, canonical):
    assert jit.normalize_protocol(value) == canonical


@pytest.mark.parametrize("value", ["icmp", "any", "", None, 6])
def test_normalize_protocol_rejects(value):
    with pytest.raises(JitValidationError, match=r"allowed TCP, UDP, \*"):
        jit.normalize_protocol(value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("*", "*"), ("10.0.0.1", "10.0.0.1"), ("10.0.0.0/8", "10.0.0.0/8"), (" 192.168.1.0/24 ", "192.168.1.0/24"), ("1.2.3.4/32", "1.2.3.4/32")],
)
def test_normalize_source_prefix(value, canonical):
    assert jit.normalize_source_prefix(value) == canonical


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.5/24", "has host bits set: use 10.0.0.0/24"),
        ("2001:db8::1", "IPv6"),
        ("2001:db8::/32", "IPv6"),
        ("Internet", "is not valid"),
        ("300.1.1.1", "is not valid"),
        ("", "is not valid"),
        (None, "is not valid"),
    ],
)
def test_normalize_source_prefix_rejects(value, message):
    with pytest.raises(JitValidationError, match=message):
        jit.normalize_source_prefix(value)


def test_prefix_sort_key_orders_star_ips_then_text():
    values = ["Storage", "10.0.0.0/8", "*", "9.0.0.0/8", "10.0.0.0/16", "AzureCloud"]
    assert sorted(values, key=jit.prefix_sort_key) == ["*", "9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "AzureCloud", "Storage"]


def test_normalize_port_rule_defaults():
    assert jit.normalize_port_rule({"number": 22}) == {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}


def test_normalize_port_rule_none_values_are_unset():
    rule = {
        "number": "22",
        "protocol": None,
        "allowed_source_address_prefix": None,
        "allowed_source_address_prefixes": None,
        "max_request_access_duration": None,
    }
    assert jit.normalize_port_rule(rule) == jit.normalize_port_rule({"number": 22})


def test_normalize_port_rule_full():
    rule = {
        "number": 3389,
        "protocol": "udp",
        "allowed_source_address_prefixes": ["192.168.0.0/16", "10.0.0.0/8", "10.0.0.0/8"],
        "max_request_access_duration": "90m",
    }
    assert jit.normalize_port_rule(rule) == {
        "number": 3389,
        "protocol": "UDP",
        "allowedSourceAddressPrefixes": ["10.0.0.0/8", "192.168.0.0/16"],
        "maxRequestAccessDuration": "PT1H30M",
    }


def test_normalize_port_rule_single_prefix_forms():
    one = jit.normalize_port_rule({"number": 22, "allowed_source_address_prefixes": ["1.2.3.4"]})
    two = jit.normalize_port_rule({"number": 22, "allowed_source_address_prefix": "1.2.3.4"})
    three = jit.normalize_port_rule({"number": 22, "allowed_source_address_prefixes": "1.2.3.4"})
    assert one == two == three
    assert one["allowedSourceAddressPrefix"] == "1.2.3.4"
    assert "allowedSourceAddressPrefixes" not in one


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("22", "expected a dictionary"),
        ({"port": 22}, "unknown key"),
        ({"protocol": "TCP"}, "has no number"),
        ({"number": 70000}, "port 70000 is out of range: allowed 0-65535"),
        ({"number": 22, "protocol": "icmp"}, r"protocol of ports entry for port 22 'icmp' is not valid: allowed TCP, UDP, \*"),
        ({"number": 22, "allowed_source_address_prefix": "*", "allowed_source_address_prefixes": ["*"]}, "mutually exclusive"),
        ({"number": 22, "allowed_source_address_prefixes": []}, "is empty"),
        ({"number": 22, "allowed_source_address_prefixes": ["*", "10.0.0.0/8"]}, r"combines '\*'"),
        ({"number": 22, "allowed_source_address_prefixes": ["fe80::/10"]}, "IPv6"),
        ({"number": 22, "max_request_access_duration": "2d"}, r"max_request_access_duration of ports entry for port 22 '2d' \(PT48H\) is out of range"),
        ({"number": 22, "max_request_access_duration": "1m"}, "out of range: allowed PT5M"),
    ],
)
def test_normalize_port_rule_rejects(rule, message):
    with pytest.raises(JitValidationError, match=message):
        jit.normalize_port_rule(rule)


def test_normalize_port_rules_sorted_and_unique():
    rules = jit.normalize_port_rules([{"number": 3389}, {"number": 22}])
    assert [rule["number"] for rule in rules] == [22, 3389]
    with pytest.raises(JitValidationError, match="port 22 is listed more than once in ports"):
        jit.normalize_port_rules([{"number": 22}, {"number": "22", "protocol": "udp"}])
    assert jit.normalize_port_rules(None) == []


@pytest.mark.parametrize(("os_type", "numbers"), [("Linux", [22]), ("windows", [3389, 5985, 5986]), (" WINDOWS ", [3389, 5985, 5986])])
def test_default_port_rules(os_type, numbers):
    rules = jit.default_port_rules(os_type)
    assert [rule["number"] for rule in rules] == numbers
    assert all(rule["protocol"] == "TCP" and rule["allowedSourceAddressPrefix"] == "*" and rule["maxRequestAccessDuration"] == "PT3H" for rule in rules)


def test_default_port_rules_overrides_and_unknown_os():
    rules = jit.default_port_rules("Linux", allowed_source_address_prefixes=["10.0.0.0/8"], max_request_access_duration="1h", protocol="*")
    assert rules == [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "10.0.0.0/8", "maxRequestAccessDuration": "PT1H"}]
    for bad in ("BSD", None):
        with pytest.raises(JitValidationError, match="allowed Linux, Windows"):
            jit.default_port_rules(bad)


def test_canonical_port_from_rest_and_sdk():
    rest = {"number": 22, "protocol": "Tcp", "allowedSourceAddressPrefixes": ["10.0.0.0/8"], "maxRequestAccessDuration": "PT180M"}
    sdk = {
        "number": "22",
        "protocol": "TCP",
        "allowed_source_address_prefix": "10.0.0.0/8",
        "max_request_access_duration": "PT3H",
        "allowed_source_address_prefixes": None,
    }
    expected = {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "10.0.0.0/8", "maxRequestAccessDuration": "PT3H"}
    assert jit.canonical_port(rest) == jit.canonical_port(sdk) == expected


def test_canonical_port_lenient_with_odd_values():
    odd = {"number": "ssh", "protocol": "icmp", "maxRequestAccessDuration": "forever"}
    assert jit.canonical_port(odd) == {"number": "ssh", "protocol": "icmp", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "forever"}


def test_port_prefixes_merges_both_keys():
    assert jit.port_prefixes({"allowedSourceAddressPrefix": "1.1.1.1", "allowedSourceAddressPrefixes": ["2.2.2.2"]}) == ["2.2.2.2", "1.1.1.1"]
    assert jit.port_prefixes({}) == []


def test_normalize_policy_vm_drops_read_only_and_sorts():
    raw = {
        "id": "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM1",
        "publicIpAddress": "20.1.1.1",
        "ports": [
            {"number": 3389, "protocol": "*", "allowedSourceAddressPrefixes": ["9.9.9.9", "1.1.1.1"], "maxRequestAccessDuration": "P1D"},
            {"number": 22, "protocol": "tcp", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT60M"},
            {"number": "bogus"},
        ],
    }
    assert jit.normalize_policy_vm(raw) == {
        "id": "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
        "ports": [
            {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"},
            {"number": 3389, "protocol": "*", "allowedSourceAddressPrefixes": ["1.1.1.1", "9.9.9.9"], "maxRequestAccessDuration": "PT24H"},
            {"number": "bogus", "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
        ],
    }


def test_build_policy_vm_copies_ports():
    ports = jit.default_port_rules("Linux")
    built = jit.build_policy_vm(vm("a"), ports)
    assert built == {"id": vm("a"), "ports": ports}
    built["ports"][0]["number"] = 1
    assert ports[0]["number"] == 22


port_rule_strategy = st.fixed_dictionaries(
    {
        "number": st.integers(0, 65535),
        "protocol": st.sampled_from(["tcp", "UDP", "*", "Tcp"]),
        "allowedSourceAddressPrefixes": st.lists(st.sampled_from(["*", "10.0.0.0/8", "1.2.3.4", "192.168.0.0/16", "Storage"]), min_size=0, max_size=3),
        "maxRequestAccessDuration": st.sampled_from(["PT3H", "PT180M", "P1D", "PT5M", "1h", "garbage"]),
    }
)


@given(st.lists(port_rule_strategy, max_size=4), st.text(alphabet="abcXYZ/-", max_size=10))
def test_normalize_policy_vm_idempotent(ports, suffix):
    raw = {"id": vm("vm" + suffix.replace("/", "")), "ports": ports, "publicIpAddress": "1.1.1.1"}
    once = jit.normalize_policy_vm(raw)
    assert jit.normalize_policy_vm(once) == once
    assert jit.normalize_policy_vm(copy.deepcopy(once)) == once


# --------------------------------------------------------------------------------------------------
# Resource ids


def test_parse_resource_id_vm():
    parsed = jit.parse_resource_id(vm("web-1"))
    assert parsed == jit.ResourceId(SUB, "rg-web", "Microsoft.Compute", "virtualMachines", "web-1", ())
    assert parsed.full_type == "Microsoft.Compute/virtualMachines"
    assert parsed.leaf_name == "web-1"
    assert parsed.to_id() == vm("web-1")


def test_parse_resource_id_case_insensitive_keywords_and_children():
    value = "/SUBSCRIPTIONS/s/RESOURCEGROUPS/Rg/PROVIDERS/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default/"
    parsed = jit.parse_resource_id(value)
    assert parsed.resource_group == "Rg"
    assert parsed.children == (("jitNetworkAccessPolicies", "default"),)
    assert parsed.is_type("microsoft.security/LOCATIONS/jitnetworkaccesspolicies")
    assert parsed.leaf_name == "default"
    assert parsed.to_id() == "/subscriptions/s/resourceGroups/Rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"


def test_parse_resource_id_subscription_level():
    parsed = jit.parse_resource_id("/subscriptions/s/providers/Microsoft.Security/pricings/VirtualMachines")
    assert parsed.resource_group is None
    assert parsed.to_id() == "/subscriptions/s/providers/Microsoft.Security/pricings/VirtualMachines"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "vm1",
        "/subscriptions",
        "/subscriptions/s/resourceGroups",
        "/subscriptions/s/resourceGroups/rg",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions",
        "/subscriptions/s/resourceGroups/rg/things/Microsoft.Compute/virtualMachines/vm",
        "/subscriptions/s/resourceGroups//providers/Microsoft.Compute/virtualMachines/vm",
        "/tenants/t/providers/Microsoft.Compute/virtualMachines/vm",
    ],
)
def test_parse_resource_id_malformed(value):
    with pytest.raises(JitValidationError, match="is malformed: expected /subscriptions/"):
        jit.parse_resource_id(value)


def test_parse_vm_id_rejects_other_types():
    assert jit.parse_vm_id(vm("a")).name == "a"
    for value in (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic",
        "/subscriptions/s/providers/Microsoft.Compute/virtualMachines/vm",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions/x",
    ):
        with pytest.raises(JitValidationError, match="is not a virtual machine id"):
            jit.parse_vm_id(value)


def test_jit_policy_id_roundtrip():
    value = jit.jit_policy_id(SUB, "rg-web", "West Europe")
    assert value == f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    assert jit.parse_jit_policy_id(value) == jit.PolicyKey(SUB, "rg-web", "westeurope", "default")
    assert jit.policy_key_id(jit.PolicyKey(SUB, "rg-web", "westeurope", "default")) == value
    with pytest.raises(JitValidationError, match="is not a JIT policy id"):
        jit.parse_jit_policy_id(vm("a"))


@pytest.mark.parametrize("args", [("", "rg", "loc", "p"), ("s", "r/g", "loc", "p"), ("s", "rg", None, "p"), ("s", "rg", "loc", " ")])
def test_jit_policy_id_rejects(args):
    with pytest.raises(JitValidationError, match="expected a non-empty name without '/'"):
        jit.jit_policy_id(*args)


@pytest.mark.parametrize("args", [("", "rg", "vm"), ("s", None, "vm"), ("s", "rg", "a/b")])
def test_vm_id_rejects(args):
    with pytest.raises(JitValidationError, match="virtual machine"):
        jit.vm_id(*args)


def test_normalize_and_same_id():
    assert jit.normalize_id(" /Subscriptions/S/x/ ") == "/subscriptions/s/x"
    assert jit.normalize_id("") == ""
    assert jit.same_id(vm("Web-1"), vm("web-1").upper() + "/")
    assert not jit.same_id(vm("a"), vm("b"))


def test_vm_id_from_reference():
    assert jit.vm_id_from_reference({"id": " " + vm("a") + " "}) == vm("a")
    assert jit.vm_id_from_reference({"name": "a", "resource_group": "rg-web", "id": None}, SUB) == vm("a")


@pytest.mark.parametrize(
    ("reference", "subscription", "message"),
    [
        ("vm1", SUB, "expected {id} or {name, resource_group}"),
        ({"id": vm("a"), "name": "a"}, SUB, "sets id together with name"),
        ({"name": "a"}, SUB, "is incomplete"),
        ({"name": "a", "resource_group": "rg"}, None, "needs a subscription"),
        ({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n"}, SUB, "not a virtual machine id"),
    ],
)
def test_vm_id_from_reference_rejects(reference, subscription, message):
    with pytest.raises(JitValidationError, match=message):
        jit.vm_id_from_reference(reference, subscription)


@given(
    st.text(alphabet="abcdefABCDEF0123456789-", min_size=1, max_size=12),
    st.text(alphabet="abcRG_-.()", min_size=1, max_size=12),
    st.text(alphabet="abcVM-_", min_size=1, max_size=12),
)
def test_vm_id_parse_roundtrip(sub, rg, name):
    parsed = jit.parse_vm_id(jit.vm_id(sub, rg, name))
    assert (parsed.subscription, parsed.resource_group, parsed.name) == (sub, rg, name)
    assert jit.same_id(parsed.to_id(), jit.vm_id(sub, rg, name).upper())


# --------------------------------------------------------------------------------------------------
# Grouping


def test_group_vms_by_policy_keys_by_rg_region_and_keeps_first_spelling():
    vms = [
        {"id": vm("a", rg="RG-Web"), "location": "westeurope"},
        {"id": vm("b", rg="rg-web"), "location": "West Europe"},
        {"id": vm("c", rg="rg-web"), "location": "northeurope"},
        {"id": vm("d", rg="rg-db"), "location": "westeurope"},
        {"id": vm("e", rg="rg-web", sub="other"), "location": "westeurope"},
    ]
    groups = jit.group_vms_by_policy(vms, policy_name="ops")
    keys = list(groups)
    assert keys == [
        jit.PolicyKey(SUB, "RG-Web", "westeurope", "ops"),
        jit.PolicyKey(SUB, "rg-web", "northeurope", "ops"),
        jit.PolicyKey(SUB, "rg-db", "westeurope", "ops"),
        jit.PolicyKey("other", "rg-web", "westeurope", "ops"),
    ]
    assert [item["id"] for item in groups[keys[0]]] == [vm("a", rg="RG-Web"), vm("b")]


def test_group_vms_by_policy_requires_location_and_vm_id():
    with pytest.raises(JitValidationError, match="has no location"):
        jit.group_vms_by_policy([{"id": vm("a")}])
    with pytest.raises(JitValidationError, match="malformed"):
        jit.group_vms_by_policy([{"id": "nope", "location": "x"}])


# --------------------------------------------------------------------------------------------------
# Merge, diff, verify


def test_merge_replaces_in_place_appends_new_and_keeps_others_identical():
    other = entry("other", publicIpAddress="1.2.3.4", extra={"kept": True})
    named = entry("named")
    existing = [other, named]
    before = copy.deepcopy(existing)
    desired_named = {"id": vm("NAMED").upper(), "ports": jit.default_port_rules("Windows")}
    new = {"id": vm("new"), "ports": jit.default_port_rules("Linux")}
    merged = jit.merge_policy_vms(existing, [new, desired_named])
    assert merged == [other, desired_named, new]
    assert merged[0] is other
    assert existing == before


def test_merge_purge_drops_unnamed():
    existing = [entry("a"), entry("b")]
    desired = [entry("b", ports=[])]
    assert jit.merge_policy_vms(existing, desired, purge=True) == desired


def test_merge_rejects_duplicate_desired_and_collapses_duplicate_existing():
    with pytest.raises(JitValidationError, match="listed more than once"):
        jit.merge_policy_vms([], [entry("a"), {"id": vm("A").upper(), "ports": []}])
    existing = [entry("a"), entry("b"), entry("a")]
    replacement = entry("a", ports=[])
    assert jit.merge_policy_vms(existing, [replacement]) == [replacement, entry("b")]


def test_remove_policy_vms():
    existing = [entry("a"), entry("b"), entry("c")]
    assert jit.remove_policy_vms(existing, [vm("A").upper(), vm("zzz")]) == [entry("b"), entry("c")]
    assert jit.remove_policy_vms(existing, [])[0] is existing[0]


def test_policy_vms_equal_ignores_order_case_and_spelling():
    first = [entry("a"), entry("b", ports=jit.default_port_rules("Windows"))]
    second = [
        {
            "id": vm("B").upper(),
            "ports": list(reversed([dict(p, maxRequestAccessDuration="PT180M", protocol="tcp") for p in jit.default_port_rules("Windows")])),
        },
        {
            "id": vm("a"),
            "ports": [{"number": 22, "protocol": "Tcp", "allowedSourceAddressPrefixes": ["*"], "maxRequestAccessDuration": "3h"}],
            "publicIpAddress": "x",
        },
    ]
    assert jit.policy_vms_equal(first, second)
    assert not jit.policy_vms_equal(first, second[:1])


def test_diff_and_summary():
    before = [entry("a"), entry("b"), entry("gone")]
    after = [entry("a"), entry("b", ports=[]), entry("added")]
    diff = jit.diff_policy_vms(before, after)
    assert [item["id"] for item in diff["before"]] == sorted(jit.normalize_id(vm(n)) for n in ("a", "b", "gone"))
    assert [item["id"] for item in diff["after"]] == sorted(jit.normalize_id(vm(n)) for n in ("a", "added", "b"))
    assert jit.summarize_policy_vm_changes(before, after) == {
        "added": [jit.normalize_id(vm("added"))],
        "changed": [jit.normalize_id(vm("b"))],
        "removed": [jit.normalize_id(vm("gone"))],
    }


def test_verify_policy():
    desired = [entry("a", ports=jit.default_port_rules("Windows"))]
    read_back = [{"id": vm("A").upper(), "ports": jit.default_port_rules("Windows")}, entry("keep")]
    result = jit.verify_policy(read_back, desired, preserved_ids=[vm("keep")])
    assert result.ok
    assert result == jit.VerifyResult([], [])

    concurrent = [entry("a"), entry("intruder")]
    result = jit.verify_policy(concurrent, desired, preserved_ids=[vm("keep")], removed_ids=[vm("intruder")])
    assert not result.ok
    assert result.not_as_asked == sorted([jit.normalize_id(vm("a")), jit.normalize_id(vm("intruder"))])
    assert result.lost == [jit.normalize_id(vm("keep"))]


def test_policy_vm_entries_and_find():
    rest = {"name": "default", "properties": {"virtualMachines": [entry("a")]}}
    sdk = {"name": "default", "virtual_machines": [entry("b")]}
    assert jit.policy_vm_entries(rest) == [entry("a")]
    assert jit.policy_vm_entries(sdk) == [entry("b")]
    assert jit.policy_vm_entries(None) == []
    assert jit.find_policy_vm(rest, vm("A").upper()) == entry("a")
    assert jit.find_policy_vm([entry("b")], vm("b")) == entry("b")
    assert jit.find_policy_vm(sdk, vm("zz")) is None


names = st.sampled_from([f"vm{index}" for index in range(8)])


@given(st.lists(names, unique=True), st.lists(names, unique=True), st.booleans())
def test_merge_properties(existing_names, desired_names, purge):
    existing = [entry(name, extra=name) for name in existing_names]
    desired = [entry(name.upper(), ports=[]) for name in desired_names]
    merged = jit.merge_policy_vms(existing, desired, purge=purge)
    merged_ids = [jit.normalize_id(item["id"]) for item in merged]
    assert len(merged_ids) == len(set(merged_ids))
    desired_ids = {jit.normalize_id(item["id"]) for item in desired}
    # every desired VM is present exactly as desired
    for item in desired:
        assert item in merged
    # an unnamed VM is never lost (unless purge), and never modified
    for item in existing:
        if jit.normalize_id(item["id"]) not in desired_ids:
            assert (item in merged) != purge
            if not purge:
                assert any(kept is item for kept in merged)
    # stable order: surviving existing VMs keep their relative order
    survivors = [jit.normalize_id(item["id"]) for item in existing if jit.normalize_id(item["id"]) in merged_ids]
    assert [i for i in merged_ids if i in survivors] == survivors
    # merging again is a no-op and the verifier accepts the result
    assert jit.policy_vms_equal(jit.merge_policy_vms(merged, desired, purge=purge), merged)
    preserved = [item["id"] for item in existing if jit.normalize_id(item["id"]) not in desired_ids and not purge]
    assert jit.verify_policy(merged, desired, preserved).ok


# --------------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T10:00:00Z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T10:00:00.1234567Z", datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-21T10:00:00.5", datetime(2026, 11, 21, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-21T10:00:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21 10:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T11:30:00+01:30", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T08:00:00.0000000-0200", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21t10:00:00z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 21, 10, 0), datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 21, 11, 0, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
    ],
)
def test_parse_azure_datetime(text, expected):
    parsed = jit.parse_azure_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-21", None, 12])
def test_parse_azure_datetime_rejects(text):
    with pytest.raises(JitValidationError, match="timestamp"):
        jit.parse_azure_datetime(text)


def test_format_azure_datetime():
    assert jit.format_azure_datetime(NOW) == "2026-11-21T10:00:00Z"
    assert jit.format_azure_datetime("2026-11-21T10:00:00.25+00:00") == "2026-11-21T10:00:00.250000Z"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_datetime_roundtrip(value):
    assert jit.parse_azure_datetime(jit.format_azure_datetime(value)) == value


# --------------------------------------------------------------------------------------------------
# Requests


def request(vm_name, port, *, start, end, status="Initiated", source=None, sources=None, requestor="alice@example.com", justification="ops"):
    port_entry = {"number": port, "endTimeUtc": end, "status": status, "statusReason": "UserRequested"}
    if source is not None:
        port_entry["allowedSourceAddressPrefix"] = source
    if sources is not None:
        port_entry["allowedSourceAddressPrefixes"] = sources
    return {"virtualMachines": [{"id": vm(vm_name), "ports": [port_entry]}], "startTimeUtc": start, "requestor": requestor, "justification": justification}


def test_active_requests_picks_latest_initiated_and_unexpired():
    policy = {
        "properties": {
            "requests": [
                request("a", 22, start="2026-11-21T09:00:00Z", end="2026-11-21T11:00:00Z", source="1.1.1.1", justification="old"),
                request("a", 22, start="2026-11-21T09:30:00.1234567Z", end="2026-11-21T10:30:00Z", sources=["3.3.3.3", "2.2.2.2"], justification="new"),
                request("a", 22, start="2026-11-21T08:00:00Z", end="2026-11-21T12:00:00Z", source="9.9.9.9", justification="older"),
                request("a", 3389, start="2026-11-21T09:00:00Z", end="2026-11-21T09:59:59Z", source="1.1.1.1"),
                request("b", 22, start="2026-11-21T09:50:00Z", end="2026-11-21T11:00:00Z", status="Revoked", source="1.1.1.1"),
                request("b", 22, start="2026-11-21T09:40:00Z", end="2026-11-21T10:00:00Z", source="1.1.1.1"),
                request("c", 22, start="garbage", end="2026-11-21T11:00:00Z"),
                request("c", 22, start="2026-11-21T09:00:00Z", end="not a time"),
            ]
        }
    }
    active = jit.active_requests(policy, NOW)
    assert list(active) == [(jit.normalize_id(vm("a")), 22)]
    found = active[(jit.normalize_id(vm("a")), 22)]
    assert found.sources == ("2.2.2.2", "3.3.3.3")
    assert found.justification == "new"
    assert found.end_time == datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
    assert found.requestor == "alice@example.com"


def test_active_requests_sdk_shape_and_no_source():
    policy = {
        "requests": [
            {
                "virtual_machines": [
                    {"id": vm("A").upper(), "ports": [{"number": 22, "end_time_utc": datetime(2026, 11, 21, 11, 0, tzinfo=UTC), "status": "initiated"}]}
                ],
                "start_time_utc": datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
                "requestor": "bob",
            }
        ]
    }
    active = jit.active_requests(policy, "2026-11-21T10:00:00Z")
    found = active[(jit.normalize_id(vm("a")), 22)]
    assert found.sources == ()
    assert found.justification is None
    assert jit.active_requests({}, NOW) == {}


def test_active_requests_tie_later_entry_wins():
    policy = {
        "properties": {
            "requests": [
                request("a", 22, start="2026-11-21T09:00:00Z", end="2026-11-21T11:00:00Z", source="1.1.1.1"),
                request("a", 22, start="2026-11-21T09:00:00Z", end="2026-11-21T11:00:00Z", source="2.2.2.2"),
            ]
        }
    }
    assert jit.active_requests(policy, NOW)[(jit.normalize_id(vm("a")), 22)].sources == ("2.2.2.2",)


def active(sources=("1.1.1.1",), end=NOW + timedelta(hours=1), requestor="alice", status="Initiated"):
    return jit.ActiveRequest(jit.normalize_id(vm("a")), 22, tuple(sources), NOW, end, status, requestor, None)


def test_renew_margin_and_needed_end():
    assert jit.default_renew_margin(3600) == 600
    assert jit.default_renew_margin(600) == 300
    assert jit.needed_end_time(NOW, 3600) == NOW + timedelta(minutes=50)
    assert jit.needed_end_time("2026-11-21T10:00:00Z", 3600, renew_margin_seconds=0) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("current", "sources", "needed", "requestor", "covered"),
    [
        (None, ["1.1.1.1"], NOW, None, False),
        (active(), ["1.1.1.1"], NOW + timedelta(minutes=50), None, True),
        (active(), ["1.1.1.1"], NOW + timedelta(hours=1), None, True),
        (active(), ["1.1.1.1"], NOW + timedelta(hours=1, seconds=1), None, False),
        (active(), ["2.2.2.2"], NOW, None, False),
        (active(("1.1.1.1", "2.2.2.2")), ["2.2.2.2", "1.1.1.1"], NOW, None, True),
        (active(status="Revoked"), ["1.1.1.1"], NOW, None, False),
        (active(), None, NOW, "ALICE", True),
        (active(), None, NOW, "bob", False),
        (active(), None, NOW, None, False),
        (active(requestor=None), None, NOW, "alice", False),
    ],
)
def test_request_covers(current, sources, needed, requestor, covered):
    assert jit.request_covers(current, sources, needed, requestor=requestor) is covered


@pytest.mark.parametrize("value", ["*", "0.0.0.0/0", "Internet", "ANY", " any "])
def test_any_source_refused_unless_allowed(value):
    assert jit.is_any_source(value)
    with pytest.raises(JitValidationError, match="opens the port to any source.*allow_any_source: true"):
        jit.normalize_request_sources([value])
    assert jit.normalize_request_sources([value, "1.2.3.4"], allow_any_source=True) == ("*",)


def test_normalize_request_sources():
    assert jit.normalize_request_sources(None) is None
    assert jit.normalize_request_sources([]) is None
    assert jit.normalize_request_sources("1.2.3.4") == ("1.2.3.4",)
    assert jit.normalize_request_sources(["10.0.0.0/8", "1.2.3.4", "1.2.3.4"]) == ("1.2.3.4", "10.0.0.0/8")
    with pytest.raises(JitValidationError, match="IPv6"):
        jit.normalize_request_sources(["2001:db8::1"])
    assert not jit.is_any_source(None)


def policy_vm(prefixes=("*",), maximum="PT3H"):
    port = {"number": 22, "protocol": "TCP", "maxRequestAccessDuration": maximum}
    port.update({"allowedSourceAddressPrefix": prefixes[0]} if len(prefixes) == 1 else {"allowedSourceAddressPrefixes": list(prefixes)})
    return {"id": vm("a"), "ports": [port, {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}]}


# The 2020-01-01 spec's JitNetworkAccessPolicyInitiatePort: nothing else may be sent.
INITIATE_PORT_FIELDS = {"number", "allowedSourceAddressPrefix", "endTimeUtc"}


def test_build_initiate_ports_defaults_to_every_policy_port():
    ports = jit.build_initiate_ports(policy_vm(), duration="30m", now=NOW)
    assert ports == [{"number": 22, "endTimeUtc": "2026-11-21T10:30:00Z"}, {"number": 3389, "endTimeUtc": "2026-11-21T10:30:00Z"}]


def test_build_initiate_ports_send_only_the_spec_fields():
    ports = jit.build_initiate_ports(policy_vm(("10.0.0.0/8", "20.0.0.0/8")), duration="1h", ports=["22", 22], sources=["10.1.2.3"], now=NOW)
    assert ports == [{"number": 22, "endTimeUtc": "2026-11-21T11:00:00Z", "allowedSourceAddressPrefix": "10.1.2.3"}]
    single = jit.build_initiate_ports(policy_vm(), ports=[22], sources=["5.6.7.8"])
    assert set(single[0]) == INITIATE_PORT_FIELDS and single[0]["allowedSourceAddressPrefix"] == "5.6.7.8"  # endTimeUtc from the current time
    with pytest.raises(JitValidationError, match="one source prefix per port"):
        jit.build_initiate_ports(policy_vm(("10.0.0.0/8", "20.0.0.0/8")), ports=[22], sources=["10.1.2.3", "20.0.0.0/16"], now=NOW)
    anywhere = jit.build_initiate_ports(policy_vm(), ports=[22], sources=["Internet"], allow_any_source=True)
    assert anywhere[0]["allowedSourceAddressPrefix"] == "*"


def test_build_initiate_ports_policy_with_tag_prefix_matches_exactly():
    vm_entry = {"id": vm("a"), "ports": [{"number": 22, "allowedSourceAddressPrefixes": ["AzureCloud", "1.2.3.4"], "maxRequestAccessDuration": "PT3H"}]}
    assert jit.build_initiate_ports(vm_entry, sources=["1.2.3.4"])[0]["allowedSourceAddressPrefix"] == "1.2.3.4"
    with pytest.raises(JitValidationError, match="not within"):
        jit.build_initiate_ports(vm_entry, sources=["5.5.5.5"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ports": [80]}, r"port 80 is not in the JIT policy of VM 'web-1': allowed ports 22, 3389"),
        ({"ports": []}, "no ports to open on VM 'web-1'"),
        ({"ports": [70000]}, "port 70000 is out of range"),
        (
            {"ports": [3389], "duration": "2h"},
            r"duration for port 3389 on VM 'web-1' '2h' \(PT2H\) is out of range: allowed PT1M \(1 minute\) to PT1H \(1 hour\)",
        ),
        ({"duration": "30s"}, "out of range: allowed PT1M"),
        ({"duration": "soon"}, "not a valid duration"),
        ({"sources": ["8.8.8.8"]}, r"source '8.8.8.8' is not within the allowed source prefixes of port 22 on VM 'web-1': allowed 10.0.0.0/8"),
        ({"sources": ["*"], "allow_any_source": True}, r"source '\*' is not within"),
        ({"sources": ["10.0.0.0/7"]}, "is not within"),
        ({"sources": ["::1"]}, "IPv6"),
        ({"sources": ["0.0.0.0/0"]}, "allow_any_source"),
    ],
)
def test_build_initiate_ports_rejects(kwargs, message):
    vm_entry = policy_vm(("10.0.0.0/8",))
    vm_entry["ports"][1]["allowedSourceAddressPrefix"] = "10.0.0.0/8"
    with pytest.raises(JitValidationError, match=message):
        jit.build_initiate_ports(vm_entry, vm_label="web-1", **kwargs)


def test_build_initiate_ports_uses_id_as_label_and_handles_no_ports():
    with pytest.raises(JitValidationError, match=r"allowed ports none"):
        jit.build_initiate_ports({"id": vm("a"), "ports": []}, ports=[22])
    with pytest.raises(JitValidationError, match="virtualMachines/a"):
        jit.build_initiate_ports({"id": vm("a")})


def test_build_initiate_body():
    ports = [{"number": 22, "endTimeUtc": "2026-11-21T11:00:00Z"}]
    assert jit.build_initiate_body({vm("a"): ports}, justification="deploy") == {
        "virtualMachines": [{"id": vm("a"), "ports": ports}],
        "justification": "deploy",
    }
    assert jit.build_initiate_body([(vm("a"), ports), (vm("b"), ports)]) == {
        "virtualMachines": [{"id": vm("a"), "ports": ports}, {"id": vm("b"), "ports": ports}]
    }


@given(
    st.lists(st.integers(0, 32), min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_sources_inside_policy_prefix_always_accepted(lengths, address):
    import ipaddress

    policy_prefix = ipaddress.ip_network((address, lengths[0]), strict=False)
    vm_entry = {"id": vm("a"), "ports": [{"number": 22, "allowedSourceAddressPrefix": str(policy_prefix), "maxRequestAccessDuration": "PT3H"}]}
    sources = [str(sub) for sub in (next(policy_prefix.subnets(new_prefix=max(length, policy_prefix.prefixlen))) for length in lengths)]
    if "0.0.0.0/0" in sources:
        return
    for source in sources:  # one source per request (the initiate port has a single prefix)
        ports = jit.build_initiate_ports(vm_entry, sources=[source])
        assert ports[0]["number"] == 22 and ports[0]["allowedSourceAddressPrefix"] == source
