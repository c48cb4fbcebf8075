# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Leases: access opened as short requests that jit_guard renews while the run is alive.

``jit_request lease=10m duration=2h`` initiates a 10-minute request; the jit_guard callback renews
it shortly before it ends (:func:`_request.lease_renew_before`) until ``access_until`` (start plus
the duration). When the controller dies (SIGKILL, power loss), nothing renews it and Azure ends
the access within one lease: the exposure of a killed run is bounded by the lease.

A lease is renewed only while Azure's own record shows it is still ours: an active request for
the VM port from the same source. A lease whose request was closed, expired (the controller was
suspended) or replaced by another party's request is given up, never reopened. Every decision is
made on Azure's clock (the ``Date`` of the policy read), so a skewed controller clock cannot make
a lease lapse.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import format_azure_datetime, normalize_id, parse_azure_datetime
from ansible_collections.jitaccess.azure.plugins.module_utils._nsg import source_set
from ansible_collections.jitaccess.azure.plugins.module_utils._request import (
    MIN_REQUEST_SECONDS,
    active_requests,
    build_initiate_body,
    lease_renew_before,
)

RENEW_DUE = "due"
RENEW_LATER = "later"
RENEW_DONE = "done"  # the lease has reached access_until: it ends with its request
RENEW_LOST = "lost"  # closed, expired or replaced by someone else's request: never reopened


@dataclass(frozen=True)
class Lease:
    """One leased VM port: what jit_guard needs to renew it."""

    vm_id: str
    port: int
    source: str
    policy_id: str
    seconds: int
    until: object  # aware datetime: no renewal goes past it

    @classmethod
    def from_opened(cls, item, source):
        """From a jit_request ``opened`` item (result or record) with ``lease``; ``None`` otherwise."""
        try:
            seconds = int(item["lease"])
            until = parse_azure_datetime(item["access_until"])
            policy_id = str(item["policy_id"])
        except (KeyError, TypeError, ValueError):
            return None
        if seconds <= 0 or not source or not policy_id:
            return None  # a lease is renewed for the source Azure recorded, never for "the caller"
        return cls(str(item["vm_id"]), int(item["port"]), str(source), policy_id, seconds, until)


def renewal_state(lease, policy, now):
    """What to do with ``lease`` given its policy (REST JSON) read at Azure time ``now``:
    ``(RENEW_*, active request or None)``."""
    active = active_requests(policy, now).get((normalize_id(lease.vm_id), lease.port))
    if active is None or (active.sources and source_set(active.sources) != source_set((lease.source,))):
        return RENEW_LOST, active
    if active.end_time >= lease.until or (lease.until - now).total_seconds() < MIN_REQUEST_SECONDS:
        return RENEW_DONE, active
    if (active.end_time - now).total_seconds() > lease_renew_before(lease.seconds):
        return RENEW_LATER, active
    return RENEW_DUE, active


def renewal_body(leases, now, justification):
    """One ``initiate`` body renewing ``leases`` (all of one policy) from Azure time ``now``: each
    port until ``now + lease``, never past its ``access_until``; always the recorded source."""
    by_vm = OrderedDict()
    for lease in leases:
        end = min(now + timedelta(seconds=lease.seconds), lease.until)
        port = {"number": lease.port, "endTimeUtc": format_azure_datetime(end), "allowedSourceAddressPrefix": lease.source}
        by_vm.setdefault(lease.vm_id, []).append(port)
    return build_initiate_body(list(by_vm.items()), justification)
