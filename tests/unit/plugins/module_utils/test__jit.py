# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_jit: durations, ports, policy entries, grouping, merge/diff/verify and the policy index."""

from __future__ import annotations

import copy

import pytest
from fakes import SUB, WEB_VM, jit_policy, vm_id
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm
from ansible_collections.jitaccess.azure.plugins.module_utils import _jit as jit
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError


def entry(name, ports=None, **extra):
    result = {
        "id": vm_id(name),
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
    built = jit.build_policy_vm(vm_id("a"), ports)
    assert built == {"id": vm_id("a"), "ports": ports}
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
    raw = {"id": vm_id("vm" + suffix.replace("/", "")), "ports": ports, "publicIpAddress": "1.1.1.1"}
    once = jit.normalize_policy_vm(raw)
    assert jit.normalize_policy_vm(once) == once
    assert jit.normalize_policy_vm(copy.deepcopy(once)) == once


# --------------------------------------------------------------------------------------------------
# Grouping


def test_group_vms_by_policy_keys_by_rg_region_and_keeps_first_spelling():
    vms = [
        {"id": vm_id("a", rg="RG-Web"), "location": "westeurope"},
        {"id": vm_id("b", rg="rg-web"), "location": "West Europe"},
        {"id": vm_id("c", rg="rg-web"), "location": "northeurope"},
        {"id": vm_id("d", rg="rg-db"), "location": "westeurope"},
        {"id": vm_id("e", rg="rg-web", sub="other"), "location": "westeurope"},
    ]
    groups = jit.group_vms_by_policy(vms, policy_name="ops")
    keys = list(groups)
    assert keys == [
        _arm.PolicyKey(SUB, "RG-Web", "westeurope", "ops"),
        _arm.PolicyKey(SUB, "rg-web", "northeurope", "ops"),
        _arm.PolicyKey(SUB, "rg-db", "westeurope", "ops"),
        _arm.PolicyKey("other", "rg-web", "westeurope", "ops"),
    ]
    assert [item["id"] for item in groups[keys[0]]] == [vm_id("a", rg="RG-Web"), vm_id("b")]


def test_group_vms_by_policy_requires_location_and_vm_id():
    with pytest.raises(JitValidationError, match="has no location"):
        jit.group_vms_by_policy([{"id": vm_id("a")}])
    with pytest.raises(JitValidationError, match="malformed"):
        jit.group_vms_by_policy([{"id": "nope", "location": "x"}])


# --------------------------------------------------------------------------------------------------
# Merge, diff, verify


def test_merge_replaces_in_place_appends_new_and_keeps_others_identical():
    other = entry("other", publicIpAddress="1.2.3.4", extra={"kept": True})
    named = entry("named")
    existing = [other, named]
    before = copy.deepcopy(existing)
    desired_named = {"id": vm_id("NAMED").upper(), "ports": jit.default_port_rules("Windows")}
    new = {"id": vm_id("new"), "ports": jit.default_port_rules("Linux")}
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
        jit.merge_policy_vms([], [entry("a"), {"id": vm_id("A").upper(), "ports": []}])
    existing = [entry("a"), entry("b"), entry("a")]
    replacement = entry("a", ports=[])
    assert jit.merge_policy_vms(existing, [replacement]) == [replacement, entry("b")]


def test_remove_policy_vms():
    existing = [entry("a"), entry("b"), entry("c")]
    assert jit.remove_policy_vms(existing, [vm_id("A").upper(), vm_id("zzz")]) == [entry("b"), entry("c")]
    assert jit.remove_policy_vms(existing, [])[0] is existing[0]


def test_policy_vms_equal_ignores_order_case_and_spelling():
    first = [entry("a"), entry("b", ports=jit.default_port_rules("Windows"))]
    second = [
        {
            "id": vm_id("B").upper(),
            "ports": list(reversed([dict(p, maxRequestAccessDuration="PT180M", protocol="tcp") for p in jit.default_port_rules("Windows")])),
        },
        {
            "id": vm_id("a"),
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
    assert [item["id"] for item in diff["before"]] == sorted(_arm.normalize_id(vm_id(n)) for n in ("a", "b", "gone"))
    assert [item["id"] for item in diff["after"]] == sorted(_arm.normalize_id(vm_id(n)) for n in ("a", "added", "b"))
    assert jit.summarize_policy_vm_changes(before, after) == {
        "added": [_arm.normalize_id(vm_id("added"))],
        "changed": [_arm.normalize_id(vm_id("b"))],
        "removed": [_arm.normalize_id(vm_id("gone"))],
    }


def test_verify_policy():
    desired = [entry("a", ports=jit.default_port_rules("Windows"))]
    read_back = [{"id": vm_id("A").upper(), "ports": jit.default_port_rules("Windows")}, entry("keep")]
    result = jit.verify_policy(read_back, desired, preserved_ids=[vm_id("keep")])
    assert result.ok
    assert result == jit.VerifyResult([], [])

    concurrent = [entry("a"), entry("intruder")]
    result = jit.verify_policy(concurrent, desired, preserved_ids=[vm_id("keep")], removed_ids=[vm_id("intruder")])
    assert not result.ok
    assert result.not_as_asked == sorted([_arm.normalize_id(vm_id("a")), _arm.normalize_id(vm_id("intruder"))])
    assert result.lost == [_arm.normalize_id(vm_id("keep"))]


def test_policy_vm_entries_and_find():
    rest = {"name": "default", "properties": {"virtualMachines": [entry("a")]}}
    sdk = {"name": "default", "virtual_machines": [entry("b")]}
    assert jit.policy_vm_entries(rest) == [entry("a")]
    assert jit.policy_vm_entries(sdk) == [entry("b")]
    assert jit.policy_vm_entries(None) == []
    assert jit.find_policy_vm(rest, vm_id("A").upper()) == entry("a")
    assert jit.find_policy_vm([entry("b")], vm_id("b")) == entry("b")
    assert jit.find_policy_vm(sdk, vm_id("zz")) is None


names = st.sampled_from([f"vm{index}" for index in range(8)])


@given(st.lists(names, unique=True), st.lists(names, unique=True), st.booleans())
def test_merge_properties(existing_names, desired_names, purge):
    existing = [entry(name, extra=name) for name in existing_names]
    desired = [entry(name.upper(), ports=[]) for name in desired_names]
    merged = jit.merge_policy_vms(existing, desired, purge=purge)
    merged_ids = [_arm.normalize_id(item["id"]) for item in merged]
    assert len(merged_ids) == len(set(merged_ids))
    desired_ids = {_arm.normalize_id(item["id"]) for item in desired}
    # every desired VM is present as desired, keeping what Azure had that we do not set (issue 15)
    by_id = {_arm.normalize_id(item["id"]): item for item in merged}
    for item in desired:
        assert {key: by_id[_arm.normalize_id(item["id"])][key] for key in item} == item
    for item in existing:
        if _arm.normalize_id(item["id"]) in desired_ids:
            assert by_id[_arm.normalize_id(item["id"])]["extra"] == item["extra"]
    # an unnamed VM is never lost (unless purge), and never modified
    for item in existing:
        if _arm.normalize_id(item["id"]) not in desired_ids:
            assert (item in merged) != purge
            if not purge:
                assert any(kept is item for kept in merged)
    # stable order: surviving existing VMs keep their relative order
    survivors = [_arm.normalize_id(item["id"]) for item in existing if _arm.normalize_id(item["id"]) in merged_ids]
    assert [i for i in merged_ids if i in survivors] == survivors
    # merging again is a no-op and the verifier accepts the result
    assert jit.policy_vms_equal(jit.merge_policy_vms(merged, desired, purge=purge), merged)
    preserved = [item["id"] for item in existing if _arm.normalize_id(item["id"]) not in desired_ids and not purge]
    assert jit.verify_policy(merged, desired, preserved).ok


# --------------------------------------------------------------------------------------------------
# The policy index


def test_index_policies_lists_every_policy_of_a_vm_sorted_by_policy_id():
    other_place = jit_policy("default", rg="rg-other")
    custom = jit_policy("custom")
    default = jit_policy("default")
    found = jit.index_policies([default, other_place, custom, jit_policy("x", vms=())])
    assert list(found) == [WEB_VM.lower()]
    candidates = found[WEB_VM.lower()]
    assert [policy for policy, _entry in candidates] == [other_place, custom, default]
    assert all(entry_ is policy["properties"]["virtualMachines"][0] for policy, entry_ in candidates)
    assert jit.index_policies([]) == {}


def test_port_sort_key_puts_numbers_first_in_order():
    ports = [{"number": 3389}, {"number": "bogus"}, {"number": 22}, {"number": "a"}]
    assert [port["number"] for port in sorted(ports, key=jit.port_sort_key)] == [22, 3389, "a", "bogus"]


# --- strict parsing of ports and durations (issue 14, inputs) --------------------------------------


@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2)))
def test_ports_and_durations_fail_only_with_a_message_naming_the_option(value):
    for parse, name in ((jit.validate_port_number, "port in ports"), (jit.parse_duration, "duration")):
        try:
            parse(value, name=name)
        except JitValidationError as exc:
            assert str(exc).startswith(name + " ")


@given(st.integers(min_value=0, max_value=65535))
def test_port_numbers_round_trip(number):
    assert jit.validate_port_number(str(number)) == number == jit.validate_port_number(number)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["PT{}S", "{}s", "{}"]))
def test_durations_in_seconds_round_trip(seconds, form):
    assert jit.parse_duration(form.format(seconds)) == seconds


@pytest.mark.parametrize(
    "value",
    ["٢٢", "２２", "²", "PT٣H", "PT３H", "３h", "+3600", "-PT1H", "PT1.5H", "1e3", "PT" + "9" * 16 + "S", "9" * 5000, "P", "PT", "P1DT", "3h ago", "1_000"],
)
def test_durations_refuse_unicode_digits_signs_fractions_and_huge_values(value):
    with pytest.raises(JitValidationError) as info:
        jit.parse_duration(value, name="duration")
    assert str(info.value).startswith("duration ")


@pytest.mark.parametrize("value", ["٢٢", "２２", "²", "+22", "1_000", " 2 2 "])
def test_ports_refuse_unicode_digits_and_signs(value):
    with pytest.raises(JitValidationError, match="is not a whole number: allowed 0-65535"):
        jit.validate_port_number(value)


def test_a_replaced_entry_keeps_what_azure_had_that_we_do_not_set():
    """publicIpAddress (firewall-based JIT, writable) and unknown fields survive an update (issue 15)."""
    existing = {
        "id": vm_id("a"),
        "publicIpAddress": "20.1.2.3",
        "futureField": {"x": 1},
        "ports": [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H", "portHint": "ssh"}],
    }
    desired = {"id": vm_id("a"), "ports": [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "10.0.0.0/8", "maxRequestAccessDuration": "PT1H"}]}
    (merged,) = jit.merge_policy_vms([existing], [desired])
    assert merged["publicIpAddress"] == "20.1.2.3" and merged["futureField"] == {"x": 1}
    assert merged["ports"] == [dict(desired["ports"][0], portHint="ssh")]


def test_servers_plan_says_where_jit_exists():
    from ansible_collections.jitaccess.azure.plugins.module_utils._jit import servers_plan

    def pricing(**props):
        return {"name": "VirtualMachines", "properties": props}

    assert servers_plan("s", pricing(pricingTier="Standard", subPlan="P2"))["jit_available"] is True
    assert servers_plan("s", pricing(pricingTier="Standard"))["jit_available"] is True  # before sub-plans: Plan 2
    assert servers_plan("s", pricing(pricingTier="Standard", subPlan="P1"))["jit_available"] is False
    assert servers_plan("s", pricing(pricingTier="Free")) == {"subscription_id": "s", "pricing_tier": "Free", "sub_plan": None, "jit_available": False}
    assert servers_plan("s", None)["jit_available"] is None  # could not be read: unknown, never "no"
