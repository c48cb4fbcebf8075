# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_request: which JIT requests are active and cover a new one, the initiate body, and
jit_request's options (sources, duration, margin, policy choice, identity, server time)."""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import datetime, timedelta

import pytest
from fakes import NOW, UTC, jit_policy, vm_id, vm_record
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm, _request
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError

# --------------------------------------------------------------------------------------------------
# Active requests and idempotency


def request(vm_name, port, *, start, end, status="Initiated", source=None, sources=None, requestor="alice@example.com", justification="ops"):
    port_entry = {"number": port, "endTimeUtc": end, "status": status, "statusReason": "UserRequested"}
    if source is not None:
        port_entry["allowedSourceAddressPrefix"] = source
    if sources is not None:
        port_entry["allowedSourceAddressPrefixes"] = sources
    return {"virtualMachines": [{"id": vm_id(vm_name), "ports": [port_entry]}], "startTimeUtc": start, "requestor": requestor, "justification": justification}


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
    active = _request.active_requests(policy, NOW)
    assert list(active) == [(_arm.normalize_id(vm_id("a")), 22)]
    found = active[(_arm.normalize_id(vm_id("a")), 22)]
    assert found.sources == ("2.2.2.2", "3.3.3.3")
    assert found.justification == "new"
    assert found.end_time == datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
    assert found.requestor == "alice@example.com"


def test_a_request_still_initiating_is_active_and_covers_a_rerun():
    """The 2020-01-01 spec's initiate example answers "Initiating": a rerun during the apply
    window must see its own request, not supersede it (issue 15)."""
    policy = {"properties": {"requests": [request("a", 22, start="2026-11-21T09:59:50Z", end="2026-11-21T11:00:00Z", status="Initiating", source="1.1.1.1")]}}
    active = _request.active_requests(policy, NOW)[(_arm.normalize_id(vm_id("a")), 22)]
    assert active.status == _request.REQUEST_STATUS_INITIATED
    assert _request.request_covers(active, ("1.1.1.1/32",), _request.needed_end_time(NOW, 3600))


def test_active_requests_sdk_shape_and_no_source():
    policy = {
        "requests": [
            {
                "virtual_machines": [
                    {"id": vm_id("A").upper(), "ports": [{"number": 22, "end_time_utc": datetime(2026, 11, 21, 11, 0, tzinfo=UTC), "status": "initiated"}]}
                ],
                "start_time_utc": datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
                "requestor": "bob",
            }
        ]
    }
    active = _request.active_requests(policy, "2026-11-21T10:00:00Z")
    found = active[(_arm.normalize_id(vm_id("a")), 22)]
    assert found.sources == ()
    assert found.justification is None
    assert _request.active_requests({}, NOW) == {}


def test_active_requests_tie_later_entry_wins():
    policy = {
        "properties": {
            "requests": [
                request("a", 22, start="2026-11-21T09:00:00Z", end="2026-11-21T11:00:00Z", source="1.1.1.1"),
                request("a", 22, start="2026-11-21T09:00:00Z", end="2026-11-21T11:00:00Z", source="2.2.2.2"),
            ]
        }
    }
    assert _request.active_requests(policy, NOW)[(_arm.normalize_id(vm_id("a")), 22)].sources == ("2.2.2.2",)


def active(sources=("1.1.1.1",), end=NOW + timedelta(hours=1), requestor="alice", status="Initiated"):
    return _request.ActiveRequest(_arm.normalize_id(vm_id("a")), 22, tuple(sources), NOW, end, status, requestor, None)


def test_renew_margin_and_needed_end():
    assert _request.default_renew_margin(3600) == 600
    assert _request.default_renew_margin(600) == 300
    assert _request.needed_end_time(NOW, 3600) == NOW + timedelta(minutes=50)
    assert _request.needed_end_time("2026-11-21T10:00:00Z", 3600, renew_margin_seconds=0) == NOW + timedelta(hours=1)


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
    assert _request.request_covers(current, sources, needed, requestor=requestor) is covered


@pytest.mark.parametrize(
    ("active_sources", "asked"),
    [
        (("10.0.0.1/32",), ["10.0.0.1"]),
        (("10.0.0.1",), ["10.0.0.1/32"]),
        (("10.0.0.0/24", "10.0.1.7"), ["10.0.1.7/32", "10.0.0.0/24"]),
        (("*",), ["0.0.0.0/0"]),
    ],
)
def test_request_covers_compares_sources_by_address_not_spelling(active_sources, asked):
    assert _request.request_covers(active(active_sources), asked, NOW) is True
    assert _request.request_covers(active(active_sources), list(asked) + ["192.0.2.1"], NOW) is False


@pytest.mark.parametrize("value", ["*", "0.0.0.0/0", "Internet", "ANY", " any "])
def test_any_source_refused_unless_allowed(value):
    assert _request.is_any_source(value)
    with pytest.raises(JitValidationError, match="opens the port to any source.*allow_any_source: true"):
        _request.normalize_request_sources([value])
    assert _request.normalize_request_sources([value, "1.2.3.4"], allow_any_source=True) == ("*",)


def test_normalize_request_sources():
    assert _request.normalize_request_sources(None) is None
    assert _request.normalize_request_sources([]) is None
    assert _request.normalize_request_sources("1.2.3.4") == ("1.2.3.4",)
    assert _request.normalize_request_sources(["10.0.0.0/8", "1.2.3.4", "1.2.3.4"]) == ("1.2.3.4", "10.0.0.0/8")
    with pytest.raises(JitValidationError, match="IPv6"):
        _request.normalize_request_sources(["2001:db8::1"])
    assert not _request.is_any_source(None)


@pytest.mark.parametrize(
    ("sources", "allow_any", "expected"),
    [
        (None, False, None),
        ([], False, None),
        (["203.0.113.7"], False, ("203.0.113.7",)),
        (["203.0.113.0/28"], False, ("203.0.113.0/28",)),
        (["*"], True, ("*",)),
        (["Internet"], True, ("*",)),
    ],
)
def test_single_source_accepted(sources, allow_any, expected):
    assert _request.normalize_single_source(sources, allow_any) == expected


@pytest.mark.parametrize(
    ("sources", "fragment"),
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
def test_single_source_refused(sources, fragment):
    with pytest.raises(JitValidationError, match=fragment):
        _request.normalize_single_source(sources, False)


# --------------------------------------------------------------------------------------------------
# The initiate body


def policy_vm(prefixes=("*",), maximum="PT3H"):
    port = {"number": 22, "protocol": "TCP", "maxRequestAccessDuration": maximum}
    port.update({"allowedSourceAddressPrefix": prefixes[0]} if len(prefixes) == 1 else {"allowedSourceAddressPrefixes": list(prefixes)})
    return {"id": vm_id("a"), "ports": [port, {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}]}


# The 2020-01-01 spec's JitNetworkAccessPolicyInitiatePort: nothing else may be sent.
INITIATE_PORT_FIELDS = {"number", "allowedSourceAddressPrefix", "endTimeUtc"}


def test_build_initiate_ports_defaults_to_every_policy_port():
    ports = _request.build_initiate_ports(policy_vm(), 1800, now=NOW)
    assert ports == [{"number": 22, "endTimeUtc": "2026-11-21T10:30:00Z"}, {"number": 3389, "endTimeUtc": "2026-11-21T10:30:00Z"}]


def test_build_initiate_ports_send_only_the_spec_fields():
    ports = _request.build_initiate_ports(policy_vm(("10.1.2.3/32", "20.0.0.0/8")), 3600, ports=["22", 22], sources=("10.1.2.3",), now=NOW)
    assert ports == [{"number": 22, "endTimeUtc": "2026-11-21T11:00:00Z", "allowedSourceAddressPrefix": "10.1.2.3"}]
    single = _request.build_initiate_ports(policy_vm(), 3600, ports=[22], sources=("5.6.7.8",))
    assert set(single[0]) == INITIATE_PORT_FIELDS and single[0]["allowedSourceAddressPrefix"] == "5.6.7.8"  # endTimeUtc from the current time
    # the initiate port takes one source prefix: more are refused before anything is built
    with pytest.raises(JitValidationError, match="one source per port"):
        _request.normalize_single_source(["10.1.2.3", "20.0.0.0/16"], False)
    anywhere = _request.build_initiate_ports(policy_vm(), 3600, ports=[22], sources=_request.normalize_single_source(["Internet"], True))
    assert anywhere[0]["allowedSourceAddressPrefix"] == "*"


def test_a_source_inside_a_policy_prefix_is_refused_unless_the_user_asks_for_the_policy_prefix():
    """Azure may refuse a source that is not one of the policy's prefixes ("not a subset of
    policy"): never rely on it. The message names the allowed prefixes; use_policy_source requests
    the policy's own prefix instead (wider: it says so)."""
    vm_entry = policy_vm(("10.0.0.0/8", "20.0.0.0/8"))
    with pytest.raises(JitValidationError) as error:
        _request.build_initiate_ports(vm_entry, 3600, ports=[22], sources=("10.1.2.3",), vm_label="web-1")
    assert "source '10.1.2.3' lies inside '10.0.0.0/8' but is not one of the allowed source prefixes of port 22 on VM 'web-1'" in str(error.value)
    assert "(10.0.0.0/8, 20.0.0.0/8)" in str(error.value) and "use_policy_source=true" in str(error.value)
    widened = _request.build_initiate_ports(vm_entry, 3600, ports=[22], sources=("10.1.2.3",), use_policy_source=True)
    assert widened[0]["allowedSourceAddressPrefix"] == "10.0.0.0/8"
    # the same prefix written another way is one of them: no widening, no refusal
    exact = _request.build_initiate_ports(policy_vm(("10.1.2.3/32",)), 3600, ports=[22], sources=("10.1.2.3",))
    assert exact[0]["allowedSourceAddressPrefix"] == "10.1.2.3"
    assert _request.policy_prefix_for("10.1.2.3", ["10.1.2.3/32"]) == (True, "10.1.2.3")
    assert _request.policy_prefix_for("10.1.2.3", ["*"]) == (True, "10.1.2.3")
    assert _request.policy_prefix_for("10.1.2.0/24", ["10.0.0.0/8", "10.1.0.0/16"]) == (False, "10.0.0.0/8")
    assert _request.policy_prefix_for("11.1.2.3", ["10.0.0.0/8"]) == (False, None)


def test_build_initiate_ports_policy_with_tag_prefix_matches_exactly():
    vm_entry = {"id": vm_id("a"), "ports": [{"number": 22, "allowedSourceAddressPrefixes": ["AzureCloud", "1.2.3.4"], "maxRequestAccessDuration": "PT3H"}]}
    assert _request.build_initiate_ports(vm_entry, 3600, sources=("1.2.3.4",))[0]["allowedSourceAddressPrefix"] == "1.2.3.4"
    with pytest.raises(JitValidationError, match="not within"):
        _request.build_initiate_ports(vm_entry, 3600, sources=("5.5.5.5",))


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
        ({"sources": ["11.0.0.0/8"]}, "is not within"),
        ({"sources": ["10.0.0.0/7"]}, "admits 33,554,432 addresses .broader than /8"),
        ({"sources": ["0.0.0.0/1"]}, "allow_any_source"),
        ({"sources": ["::1"]}, "IPv6"),
        ({"sources": ["0.0.0.0/0"]}, "allow_any_source"),
    ],
)
def test_build_initiate_ports_rejects(kwargs, message):
    """The request as jit_request makes it: options parsed once, then checked against the policy."""
    vm_entry = policy_vm(("10.0.0.0/8",))
    vm_entry["ports"][1]["allowedSourceAddressPrefix"] = "10.0.0.0/8"
    duration = kwargs.get("duration", "1h")
    with pytest.raises(JitValidationError, match=message):
        seconds = _request.parse_request_duration(duration)
        sources = _request.normalize_single_source(kwargs.get("sources"), kwargs.get("allow_any_source", False))
        _request.build_initiate_ports(vm_entry, seconds, ports=kwargs.get("ports"), sources=sources, vm_label="web-1", shown=duration)


@pytest.mark.parametrize(
    ("seconds", "shown", "message"),
    [
        (30, None, r"duration for port 22 on VM 'web-1' PT30S is out of range: allowed PT1M \(1 minute\) to PT3H \(3 hours\)"),
        (4 * 3600, "4h", r"duration for port 22 on VM 'web-1' '4h' \(PT4H\) is out of range: allowed PT1M \(1 minute\) to PT3H \(3 hours\)"),
    ],
)
def test_build_initiate_ports_checks_the_parsed_duration_per_port(seconds, shown, message):
    with pytest.raises(JitValidationError, match=message):
        _request.build_initiate_ports(policy_vm(), seconds, ports=[22], vm_label="web-1", shown=shown)


def test_build_initiate_ports_uses_id_as_label_and_handles_no_ports():
    with pytest.raises(JitValidationError, match=r"allowed ports none"):
        _request.build_initiate_ports({"id": vm_id("a"), "ports": []}, 3600, ports=[22])
    with pytest.raises(JitValidationError, match="virtualMachines/a"):
        _request.build_initiate_ports({"id": vm_id("a")}, 3600)


def test_build_initiate_body():
    ports = [{"number": 22, "endTimeUtc": "2026-11-21T11:00:00Z"}]
    assert _request.build_initiate_body({vm_id("a"): ports}, justification="deploy") == {
        "virtualMachines": [{"id": vm_id("a"), "ports": ports}],
        "justification": "deploy",
    }
    assert _request.build_initiate_body([(vm_id("a"), ports), (vm_id("b"), ports)]) == {
        "virtualMachines": [{"id": vm_id("a"), "ports": ports}, {"id": vm_id("b"), "ports": ports}]
    }


@given(
    st.lists(st.integers(0, 32), min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_a_source_inside_a_policy_prefix_is_sent_only_as_the_prefix_itself(lengths, address):
    """Any source inside a policy prefix: sent unchanged when it is that prefix, refused before any
    write otherwise, and replaced by the policy's prefix only with use_policy_source."""
    policy_prefix = ipaddress.ip_network((address, lengths[0]), strict=False)
    vm_entry = {"id": vm_id("a"), "ports": [{"number": 22, "allowedSourceAddressPrefix": str(policy_prefix), "maxRequestAccessDuration": "PT3H"}]}
    sources = [str(sub) for sub in (next(policy_prefix.subnets(new_prefix=max(length, policy_prefix.prefixlen))) for length in lengths)]
    if "0.0.0.0/0" in sources:
        return
    for source in sources:  # one source per request (the initiate port has a single prefix)
        broad = ipaddress.ip_network(source).prefixlen < _request.BROAD_SOURCE_PREFIX_LENGTH  # needs the explicit opt-in
        normalized = _request.normalize_single_source([source], broad)
        if ipaddress.ip_network(source) == policy_prefix:
            ports = _request.build_initiate_ports(vm_entry, 3600, sources=normalized)
            assert ports[0]["allowedSourceAddressPrefix"] == source
        else:
            with pytest.raises(JitValidationError, match="use_policy_source"):
                _request.build_initiate_ports(vm_entry, 3600, sources=normalized)
            ports = _request.build_initiate_ports(vm_entry, 3600, sources=normalized, use_policy_source=True)
            assert ports[0]["allowedSourceAddressPrefix"] == str(policy_prefix)


# --------------------------------------------------------------------------------------------------
# jit_request's options


def test_default_justification_names_user_and_host():
    assert _request.default_justification("deploy", "ctl-01") == "Ansible jitaccess.azure.jit_request by deploy@ctl-01"
    assert "@" in _request.default_justification()


def test_duration_and_margin():
    assert _request.parse_request_duration("1h") == 3600
    assert _request.parse_request_duration("PT90M") == 5400
    with pytest.raises(JitValidationError, match="out of range"):
        _request.parse_request_duration("25h")
    with pytest.raises(JitValidationError, match="out of range"):
        _request.parse_request_duration("30s")
    assert _request.parse_renew_margin(None, 3600) == 600
    assert _request.parse_renew_margin(None, 600) == 300
    assert _request.parse_renew_margin("5m", 3600) == 300
    with pytest.raises(JitValidationError, match="not less than duration"):
        _request.parse_renew_margin("1h", 3600)


def test_parse_port_list_keeps_order_and_refuses_an_empty_list():
    assert _request.parse_port_list(None, "ports") is None
    assert _request.parse_port_list([3389, "22", 3389], "ports") == (3389, 22)
    with pytest.raises(JitValidationError, match="ports is empty"):
        _request.parse_port_list([], "ports")
    with pytest.raises(JitValidationError, match="port in ports 70000 is out of range"):
        _request.parse_port_list([70000], "ports")


def params(**overrides):
    """jit_request's ``params`` as AnsibleModule fills them (defaults of its argument spec)."""
    values = {
        "virtual_machines": [{"id": vm_id("web-1"), "name": None, "resource_group": None, "ports": None}],
        "ports": None,
        "source_address_prefixes": None,
        "allow_any_source": False,
        "duration": "PT1H",
        "justification": None,
        "renew_margin": None,
        "force": False,
        "wait": True,
        "wait_timeout": 300,
        "state": "present",
        "stale_only": False,
    }
    values.update(overrides)
    return values


def test_parse_request_options_parses_everything_once():
    options = _request.parse_request_options(
        params(
            virtual_machines=[{"id": vm_id("web-1"), "ports": [3389]}, {"name": "web-2", "resource_group": "rg-web"}],
            ports=[22],
            source_address_prefixes=["203.0.113.7"],
            duration="2h",
            justification="patching",
        )
    )
    assert (options.duration, options.duration_text, options.renew_margin) == (7200, "2h", 600)
    assert options.sources == ("203.0.113.7",) and options.source == "203.0.113.7"
    assert options.justification == "patching"
    first, second = options.targets
    assert first.label == vm_id("web-1") and options.ports_for(first) == (3389,)
    assert second.label == "web-2" and second.reference == {"id": None, "name": "web-2", "resource_group": "rg-web"} and options.ports_for(second) == (22,)
    default = _request.parse_request_options(params(), justification="from the caller")
    assert default.sources is None and default.source is None and default.ports_for(default.targets[0]) is None
    assert default.justification == "from the caller"


def test_parse_request_options_closing_accepts_any_and_several_sources():
    options = _request.parse_request_options(params(state="absent", source_address_prefixes=["10.0.0.1", "*"]))
    assert options.sources == ("*",)
    options = _request.parse_request_options(params(state="absent", source_address_prefixes=["10.0.0.2", "10.0.0.1"]))
    assert options.sources == ("10.0.0.1", "10.0.0.2")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source_address_prefixes": ["10.0.0.1", "10.0.0.2"]}, "one source per port"),
        ({"source_address_prefixes": ["*"]}, "allow_any_source"),
        ({"duration": "soon"}, "not a valid duration"),
        ({"renew_margin": "2h"}, "not less than duration"),
        ({"wait_timeout": -1}, "wait_timeout -1 is negative"),
        ({"virtual_machines": []}, "virtual_machines is empty"),
        ({"virtual_machines": [{"name": "web-1"}]}, "is incomplete"),
        ({"ports": []}, "ports is empty"),
        ({"virtual_machines": [{"id": vm_id("web-1"), "ports": []}]}, "ports of virtual_machines entry .*web-1 is empty"),
    ],
)
def test_parse_request_options_names_the_first_bad_value(overrides, message):
    with pytest.raises(JitValidationError, match=message):
        _request.parse_request_options(params(**overrides))


def test_port_result_as_dict():
    result = _request.PortResult(22, "opened", source="203.0.113.7", open=True, access=[{"name": "r"}])
    assert result.as_dict() == {
        "number": 22,
        "source": "203.0.113.7",
        "end_time_utc": None,
        "status": None,
        "open": True,
        "action": "opened",
        "access": [{"name": "r"}],
    }


def test_choose_policy_prefers_the_vms_group_and_region_then_default():
    other_place = jit_policy("default", rg="rg-other")
    custom = jit_policy("custom")
    default = jit_policy("default")
    candidates = [(policy, policy["properties"]["virtualMachines"][0]) for policy in (other_place, custom, default)]  # _jit.index_policies order
    assert _request.choose_policy(candidates, vm_record())[0] is default
    assert _request.choose_policy([(custom, {}), (other_place, {})], vm_record())[0] is custom
    assert _request.choose_policy([], vm_record()) is None


# --------------------------------------------------------------------------------------------------
# Identity and time


def test_token_identities():
    payload = base64.urlsafe_b64encode(json.dumps({"name": "armsim-ci", "oid": "o-1", "appid": "a-1"}).encode()).decode().rstrip("=")
    assert _request.token_identities("h." + payload + ".sig") == ["armsim-ci", "o-1", "a-1"]
    assert _request.token_identities("garbage") == []


def _token(claims):
    return "h." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + ".sig"


def test_my_requests_are_recognised_from_the_claims_every_token_has():
    """An app-only token of a service principal has appid/oid and no name or upn; a user's has a
    upn. The request's requestor (the SP's object id or app id, the user's UPN) is recognised
    from those alone."""
    app_only = {"aud": "https://management.azure.com/", "appid": "a-1", "appidacr": "1", "idtyp": "app", "oid": "o-1", "sub": "o-1", "tid": "t"}
    user = {"appid": "cli", "idtyp": "user", "oid": "o-2", "upn": "alice@contoso.example", "unique_name": "alice@contoso.example", "name": "Alice"}
    end = "2026-11-21T11:00:00Z"
    for claims, requestor in ((app_only, "o-1"), (app_only, "a-1"), (user, "alice@contoso.example")):
        names = _request.token_identities(_token(claims))
        active = _request.active_requests(
            {"properties": {"requests": [dict(request("a", 22, start="2026-11-21T09:00:00Z", end=end), requestor=requestor)]}}, NOW
        )
        found = list(active.values())
        assert len(found) == 1
        assert any(_request.request_covers(found[0], None, NOW, requestor=name) for name in names), (claims, requestor)
    # someone else's request is not ours
    other = _request.active_requests({"properties": {"requests": [dict(request("a", 22, start="2026-11-21T09:00:00Z", end=end), requestor="o-9")]}}, NOW)
    assert not any(_request.request_covers(next(iter(other.values())), None, NOW, requestor=name) for name in _request.token_identities(_token(app_only)))


def test_server_time_prefers_the_date_header():
    fallback = datetime(2020, 1, 1, tzinfo=UTC)
    assert _request.server_time("Sat, 21 Nov 2026 10:00:00 GMT", fallback) == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert _request.server_time(None, fallback) is fallback
    assert _request.server_time("nonsense", fallback) is fallback


def test_earliest():
    assert _request.earliest(["2026-11-21T11:00:00Z", None, "2026-11-21T10:30:00Z"]) == "2026-11-21T10:30:00Z"
    assert _request.earliest([]) is None


@given(st.integers(min_value=0, max_value=32), st.integers(min_value=0, max_value=2**32 - 1))
def test_a_source_broader_than_a_slash_8_needs_the_explicit_opt_in(length, address):
    source = str(ipaddress.ip_network((address, length), strict=False))
    if length < _request.BROAD_SOURCE_PREFIX_LENGTH:
        with pytest.raises(JitValidationError, match="allow_any_source: true"):
            _request.normalize_request_sources([source])
        assert _request.normalize_request_sources([source], allow_any_source=True) == (("*",) if length == 0 else (source,))
    else:
        assert _request.normalize_request_sources([source]) == (source,)


def test_policy_label_is_short_and_survives_a_foreign_id():
    policy = "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    assert _request.policy_label(policy) == "rg-web/default (westeurope)"
    assert _request.policy_label("not-an-id") == "not-an-id"
