"""Pure helpers of the jit_request module: input checks, rule matching on a VM's path, close planning."""

import base64
import json
from datetime import datetime, timezone

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _close
from ansible_collections.jitaccess.azure.plugins.module_utils._jit import JitValidationError
from ansible_collections.jitaccess.azure.plugins.modules import jit_request as jr

SUB = "00000000-0000-0000-0000-000000000001"
RG = "/subscriptions/%s/resourceGroups/rg-web" % SUB
NSG_SUBNET = RG + "/providers/Microsoft.Network/networkSecurityGroups/nsg-subnet"
NSG_NIC = RG + "/providers/Microsoft.Network/networkSecurityGroups/nsg-nic"
VM_ID = RG + "/providers/Microsoft.Compute/virtualMachines/web-1"
ALLOW = "MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2"
ALLOW2 = "MicrosoftDefenderForCloud-JITRule-77-AAAA7DE4D4F44F73A5AB0D38C7F8B1B2"
DENY = "MicrosoftDefenderForCloud-JITRule_-3445_1234567890ABCDEF1234567890ABCDEF"
ALLOW_DESC = "MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'web-1'."


def rule(name, priority, port, *, source="203.0.113.7", dest="10.1.0.4", access="Allow", description=ALLOW_DESC, etag='W/"1"'):
    props = {
        "priority": priority,
        "access": access,
        "direction": "Inbound",
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "description": description,
    }
    props["sourceAddressPrefixes" if isinstance(source, list) else "sourceAddressPrefix"] = source
    props["destinationAddressPrefixes" if isinstance(dest, list) else "destinationAddressPrefix"] = dest
    props["destinationPortRanges" if isinstance(port, list) else "destinationPortRange"] = port
    return {"name": name, "etag": etag, "properties": props}


def nsg(nsg_id, *rules):
    return {"id": nsg_id, "name": nsg_id.rsplit("/", 1)[1], "properties": {"securityRules": list(rules)}}


def record(nic_nsg=NSG_NIC, subnet_nsg=NSG_SUBNET, ip="10.1.0.4"):
    return {
        "id": VM_ID,
        "name": "web-1",
        "resource_group": "rg-web",
        "location": "westeurope",
        "nics": [{"private_ip": ip, "nic_nsg_id": nic_nsg, "subnet_nsg_id": subnet_nsg, "public_ip": "20.50.0.11"}],
    }


def index(*nsgs):
    return {n["id"].lower(): n for n in nsgs}


# -- options ------------------------------------------------------------------------------------


def test_default_justification_names_user_and_host():
    assert jr.default_justification("deploy", "ctl-01") == "Ansible jitaccess.azure.jit_request by deploy@ctl-01"
    assert "@" in jr.default_justification()


@pytest.mark.parametrize(
    "sources, allow_any, expected",
    [
        (None, False, None),
        ([], False, None),
        (["203.0.113.7"], False, ("203.0.113.7",)),
        (["203.0.113.0/28"], False, ("203.0.113.0/28",)),
        (["*"], True, ("*",)),
        (["Internet"], True, ("*",)),
    ],
)
def test_request_sources_accepted(sources, allow_any, expected):
    assert jr.validate_request_sources(sources, allow_any) == expected


@pytest.mark.parametrize(
    "sources, fragment",
    [
        (["*"], "allow_any_source"),
        (["0.0.0.0/0"], "allow_any_source"),
        (["Internet"], "allow_any_source"),
        (["any"], "allow_any_source"),
        (["2001:db8::1"], "IPv6"),
        (["not-an-ip"], "not valid"),
        (["203.0.113.7", "198.51.100.1"], "one source per port"),
    ],
)
def test_request_sources_refused(sources, fragment):
    with pytest.raises(JitValidationError, match=fragment):
        jr.validate_request_sources(sources, False)


def test_duration_and_margin():
    assert jr.parse_request_duration("1h") == 3600
    assert jr.parse_request_duration("PT90M") == 5400
    with pytest.raises(JitValidationError, match="out of range"):
        jr.parse_request_duration("25h")
    with pytest.raises(JitValidationError, match="out of range"):
        jr.parse_request_duration("30s")
    assert jr.parse_renew_margin(None, 3600) == 600
    assert jr.parse_renew_margin(None, 600) == 300
    assert jr.parse_renew_margin("5m", 3600) == 300
    with pytest.raises(JitValidationError, match="not less than duration"):
        jr.parse_renew_margin("1h", 3600)


def test_source_tokens():
    assert jr.source_token("10.0.0.1") == jr.source_token("10.0.0.1/32")
    assert jr.source_token("Internet") == "*"
    assert jr.source_set(["10.0.0.0/24", "Tag"]) == frozenset({"10.0.0.0/24", "tag"})


# -- policies -----------------------------------------------------------------------------------


def policy(name, rg="rg-web", location="westeurope", vms=(VM_ID,)):
    pid = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Security/locations/%s/jitNetworkAccessPolicies/%s" % (SUB, rg, location, name)
    return {"id": pid, "name": name, "properties": {"virtualMachines": [{"id": vm, "ports": [{"number": 22}]} for vm in vms]}}


def test_index_and_choose_policy():
    other_place = policy("default", rg="rg-other")
    custom = policy("custom")
    default = policy("default")
    found = jr.index_policies([other_place, custom, default, policy("x", vms=())])
    candidates = found[VM_ID.lower()]
    assert len(candidates) == 3
    assert jr.choose_policy(candidates, record())[0] is default
    assert jr.choose_policy([(custom, {}), (other_place, {})], record())[0] is custom
    assert jr.choose_policy([], record()) is None


# -- paths and rules ----------------------------------------------------------------------------


def test_vm_paths_subnet_first_and_deduplicated():
    assert jr.vm_paths(record()) == [(NSG_SUBNET, "10.1.0.4"), (NSG_NIC, "10.1.0.4")]
    assert jr.vm_paths(record(nic_nsg=None)) == [(NSG_SUBNET, "10.1.0.4")]
    assert jr.vm_paths(record(subnet_nsg=NSG_NIC)) == [(NSG_NIC, "10.1.0.4")]
    two = record()
    two["nics"].append({"private_ip": "10.1.1.4", "nic_nsg_id": NSG_NIC, "subnet_nsg_id": None})
    assert jr.vm_paths(two) == [(NSG_SUBNET, "10.1.0.4"), (NSG_NIC, "10.1.0.4"), (NSG_NIC, "10.1.1.4")]


def test_allow_rules_match_port_destination_and_source():
    group = nsg(
        NSG_NIC,
        rule(DENY, 4096, ["22"], source="*", access="Deny", description="MDC JIT Network Access rule for policy 'default' of VM 'web-1'."),
        rule(ALLOW, 100, "22"),
        rule(ALLOW2, 101, "22", source="198.51.100.1"),
        rule("AllowHttps", 300, "443", source="*"),
        rule("MicrosoftDefenderForCloud-JITRule-5-BBBB", 102, "22", dest="10.1.0.99"),
    )
    assert [r.name for r, dummy in jr.allow_rules(group, "10.1.0.4", 22)] == [ALLOW, ALLOW2]
    assert [r.name for r, dummy in jr.allow_rules(group, "10.1.0.4", 22, ["203.0.113.7/32"])] == [ALLOW]
    assert jr.allow_rules(group, "10.1.0.4", 3389) == []


def test_access_on_path_reports_missing_and_excludes_baseline():
    subnet = nsg(NSG_SUBNET, rule(ALLOW, 100, "22"))
    nic = nsg(NSG_NIC)
    access, missing = jr.access_on_path(jr.vm_paths(record()), index(subnet, nic), 22, ["203.0.113.7"])
    assert [a["name"] for a in access] == [ALLOW]
    assert access[0]["id"] == NSG_SUBNET + "/securityRules/" + ALLOW
    assert missing == [(NSG_NIC, "10.1.0.4")]
    baseline = jr.baseline_fingerprints(jr.vm_paths(record()), index(subnet, nic), 22)
    assert baseline == {(ALLOW.lower(), 'W/"1"')}
    dummy, missing = jr.access_on_path(jr.vm_paths(record(nic_nsg=None)), index(subnet), 22, None, exclude=baseline)
    assert missing == [(NSG_SUBNET, "10.1.0.4")]
    # the same rule rewritten (new etag) counts as the new request's rule
    rewritten = nsg(NSG_SUBNET, rule(ALLOW, 100, "22", etag='W/"2"'))
    dummy, missing = jr.access_on_path(jr.vm_paths(record(nic_nsg=None)), index(rewritten), 22, None, exclude=baseline)
    assert missing == []


def test_backoff_grows_to_a_cap():
    delays = jr.backoff_delays()
    values = [next(delays) for dummy in range(14)]
    assert values[:4] == [0.5, 0.5, 0.5, 0.75]
    assert values == sorted(values)
    assert values[-1] == 10.0
    # 300 s of waiting is a bounded number of rounds (reads per NSG)
    delays, total, rounds = jr.backoff_delays(), 0, 0
    while total < 300:
        total += next(delays)
        rounds += 1
    assert rounds < 40


# -- closing ------------------------------------------------------------------------------------


def close_plan(record_, nsgs, ports=None, sources=None):
    """What ``state=absent`` selects: ``{port: [(nsg id, rule name)]}`` and ``{rule name: reason}`` kept."""
    planned, unknown, kept = _close.plan_close({VM_ID.lower(): record_}, nsgs, [{"vm_id": VM_ID, "ports": ports, "sources": sources}])
    assert unknown == []
    by_port = {}
    for item in planned:
        for number in item["port_numbers"]:
            by_port.setdefault(number, []).append((item["nsg_id"], item["rule_name"]))
    return by_port, {item["rule_name"]: item["reason"] for item in kept}


def test_close_selects_only_jit_allow_rules_of_the_vm():
    deny = rule(DENY, 4096, ["22", "3389"], source="*", access="Deny", description="MDC JIT Network Access rule for policy 'default' of VM 'web-1'.")
    subnet = nsg(
        NSG_SUBNET,
        deny,
        rule(ALLOW, 100, "22"),
        rule("AllowSsh", 200, "22", source="*", description=""),
        rule("Lookalike", 201, "22", description=ALLOW_DESC),
        rule(ALLOW2, 101, "3389"),
    )
    nic = nsg(NSG_NIC, rule(ALLOW, 100, "22"), rule("MicrosoftDefenderForCloud-JITRule-9-CCCC", 105, "22", dest="10.1.0.99"))
    by_port, kept = close_plan(record(), index(subnet, nic), ports=[22])
    assert {port: sorted(rules) for port, rules in by_port.items()} == {22: sorted([(NSG_SUBNET, ALLOW), (NSG_NIC, ALLOW)])}
    assert kept == {}
    by_port, kept = close_plan(record(), index(subnet, nic))
    assert sorted(by_port) == [22, 3389]
    by_port, kept = close_plan(record(), index(subnet, nic), ports=[22], sources=["198.51.100.1"])
    assert by_port == {}


def test_close_keeps_rules_that_would_close_more():
    shared = rule(ALLOW, 100, "22", dest=["10.1.0.4", "10.1.0.5"])
    wide = rule(ALLOW2, 101, ["22", "3389"])
    subnet = nsg(NSG_SUBNET, shared, wide)
    by_port, kept = close_plan(record(nic_nsg=None), index(subnet), ports=[22])
    assert by_port == {}
    assert "other destinations" in kept[ALLOW]
    assert "ports not asked for" in kept[ALLOW2]


# -- identity, time, messages -------------------------------------------------------------------


def test_token_identities():
    payload = base64.urlsafe_b64encode(json.dumps({"name": "armsim-ci", "oid": "o-1", "appid": "a-1"}).encode()).decode().rstrip("=")
    assert jr.token_identities("h." + payload + ".sig") == ["armsim-ci", "o-1", "a-1"]
    assert jr.token_identities("garbage") == []


def test_server_time_prefers_the_date_header():
    fallback = datetime(2020, 1, 1, tzinfo=timezone.utc)  # noqa: UP017
    assert jr.server_time("Sat, 21 Nov 2026 10:00:00 GMT", fallback) == datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)  # noqa: UP017
    assert jr.server_time(None, fallback) is fallback
    assert jr.server_time("nonsense", fallback) is fallback


def test_format_missing_and_earliest():
    text = jr.format_missing([("web-1", 22, NSG_NIC, "10.1.0.4")], {NSG_NIC.lower(): "nsg-nic"})
    assert text == "VM web-1 port 22 on NSG nsg-nic (destination 10.1.0.4)"
    assert jr.earliest(["2026-11-21T11:00:00Z", None, "2026-11-21T10:30:00Z"]) == "2026-11-21T10:30:00Z"
    assert jr.earliest([]) is None
