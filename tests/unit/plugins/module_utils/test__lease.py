# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_lease: when jit_guard renews a leased access, what it sends, and when it gives a lease up;
the lease option's bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import NOW, jit_policy_id, vm_id
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.jitaccess.azure.plugins.module_utils import _lease, _request
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError, format_azure_datetime, parse_azure_datetime

LEASE = 600
SOURCE = "203.0.113.7"


def a_lease(port=22, vm="web-1", seconds=LEASE, until=NOW + timedelta(hours=2), source=SOURCE):
    return _lease.Lease(vm_id(vm), port, source, jit_policy_id(), seconds, until)


def policy(*requests):
    return {"id": jit_policy_id(), "properties": {"virtualMachines": [], "requests": list(requests)}}


def request(end, *, port=22, vm="web-1", source=SOURCE, start=NOW - timedelta(minutes=5), status="Initiated"):
    return {
        "startTimeUtc": format_azure_datetime(start),
        "requestor": "app",
        "virtualMachines": [
            {"id": vm_id(vm), "ports": [{"number": port, "endTimeUtc": format_azure_datetime(end), "status": status, "allowedSourceAddressPrefix": source}]}
        ],
    }


def test_renew_before_is_half_the_lease_at_most_three_minutes():
    assert _request.lease_renew_before(300) == 150
    assert _request.lease_renew_before(600) == 180
    assert _request.lease_renew_before(3600) == 180


@pytest.mark.parametrize(
    ("end_in", "expected"),
    [
        (timedelta(minutes=9), _lease.RENEW_LATER),
        (timedelta(seconds=181), _lease.RENEW_LATER),
        (timedelta(seconds=180), _lease.RENEW_DUE),
        (timedelta(seconds=10), _lease.RENEW_DUE),
    ],
)
def test_a_lease_is_renewed_only_within_its_margin(end_in, expected):
    state, active = _lease.renewal_state(a_lease(), policy(request(NOW + end_in)), NOW)
    assert state == expected
    assert active is not None


def test_a_lease_whose_request_ended_or_was_replaced_is_given_up_never_reopened():
    # closed early and expired, or never there: nothing active
    assert _lease.renewal_state(a_lease(), policy(request(NOW - timedelta(seconds=1))), NOW)[0] == _lease.RENEW_LOST
    assert _lease.renewal_state(a_lease(), policy(), NOW)[0] == _lease.RENEW_LOST
    # another party's newer request for the same VM port, from another source
    state, active = _lease.renewal_state(a_lease(), policy(request(NOW + timedelta(minutes=1), source="198.51.100.9")), NOW)
    assert state == _lease.RENEW_LOST and active.sources == ("198.51.100.9",)
    # the same source written as a /32 is the same request
    assert _lease.renewal_state(a_lease(), policy(request(NOW + timedelta(minutes=1), source=SOURCE + "/32")), NOW)[0] == _lease.RENEW_DUE


def test_a_lease_that_reached_its_end_is_done():
    until = NOW + timedelta(minutes=2)
    assert _lease.renewal_state(a_lease(until=until), policy(request(until)), NOW)[0] == _lease.RENEW_DONE
    # less than the shortest request left: not worth a renewal, the request ends by itself
    assert _lease.renewal_state(a_lease(until=NOW + timedelta(seconds=59)), policy(request(NOW + timedelta(seconds=30))), NOW)[0] == _lease.RENEW_DONE


def test_the_renewal_body_has_the_spec_fields_one_vm_entry_each_and_never_passes_access_until():
    leases = [a_lease(22), a_lease(3389), a_lease(22, vm="web-2", until=NOW + timedelta(minutes=4))]
    body = _lease.renewal_body(leases, NOW, "renewal")
    assert body == {
        "virtualMachines": [
            {
                "id": vm_id("web-1"),
                "ports": [
                    {"number": 22, "endTimeUtc": "2026-11-21T10:10:00Z", "allowedSourceAddressPrefix": SOURCE},
                    {"number": 3389, "endTimeUtc": "2026-11-21T10:10:00Z", "allowedSourceAddressPrefix": SOURCE},
                ],
            },
            {"id": vm_id("web-2"), "ports": [{"number": 22, "endTimeUtc": "2026-11-21T10:04:00Z", "allowedSourceAddressPrefix": SOURCE}]},
        ],
        "justification": "renewal",
    }


def test_from_opened_needs_a_lease_a_recorded_source_and_the_policy():
    item = {"vm_id": vm_id("web-1"), "port": 22, "policy_id": jit_policy_id(), "lease": 600, "access_until": "2026-11-21T12:00:00Z"}
    lease = _lease.Lease.from_opened(item, SOURCE)
    assert lease == a_lease(until=parse_azure_datetime("2026-11-21T12:00:00Z"))
    assert _lease.Lease.from_opened(item, None) is None  # "the caller's address" cannot be renewed from elsewhere
    assert _lease.Lease.from_opened(dict(item, lease=None), SOURCE) is None
    assert _lease.Lease.from_opened({k: v for k, v in item.items() if k != "access_until"}, SOURCE) is None


@given(st.integers(min_value=300, max_value=24 * 3600), st.integers(min_value=0, max_value=24 * 3600))
def test_a_renewed_lease_never_lapses_and_never_outlives_its_access(lease_seconds, elapsed):
    """From any moment a renewal is due: the new end is after the old one (no gap) unless the
    access has reached its end, and never after access_until."""
    until = NOW + timedelta(hours=24)
    lease = a_lease(seconds=lease_seconds, until=until)
    now = NOW + timedelta(seconds=elapsed)
    end = now + timedelta(seconds=_request.lease_renew_before(lease_seconds))  # the latest end that is due
    state, _active = _lease.renewal_state(lease, policy(request(end)), now)
    if state == _lease.RENEW_DUE:
        port = _lease.renewal_body([lease], now, None)["virtualMachines"][0]["ports"][0]
        new_end = parse_azure_datetime(port["endTimeUtc"])
        assert end < new_end <= until
        assert new_end - now <= timedelta(seconds=lease_seconds)
    else:
        assert state == _lease.RENEW_DONE and (end >= until or until - now < timedelta(seconds=60))


@pytest.mark.parametrize(
    ("lease", "duration", "message"),
    [
        ("4m", 3600, "lease (at most the duration) '4m' (PT4M) is out of range: allowed PT5M"),
        ("2h", 3600, "to PT1H"),
        ("ten minutes", 3600, "lease"),
    ],
)
def test_lease_bounds(lease, duration, message):
    with pytest.raises(JitValidationError) as error:
        _request.parse_lease(lease, duration)
    assert message in str(error.value)
    assert _request.parse_lease("10m", 3600) == 600
    assert _request.parse_lease(None, 3600) is None
