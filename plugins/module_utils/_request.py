# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of JIT access requests (jit_request and the fleet role): which requests are active,
whether one already covers what is asked, and the exact ``initiate`` body the 2020-01-01 API takes.

Policy logic (ports, durations, policy entries) lives in ``_jit``; NSG rules in ``_nsg``.
"""

from __future__ import annotations

import base64
import getpass
import ipaddress
import json
import socket
from collections import OrderedDict, namedtuple
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import (
    DEFAULT_POLICY_NAME,
    JitValidationError,
    as_list,
    bastion_reference,
    format_azure_datetime,
    normalize_id,
    parse_azure_datetime,
    parse_jit_policy_id,
    properties_of,
    rest_field,
    vm_id_from_reference,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._jit import (
    MAX_MAX_REQUEST_ACCESS_SECONDS,
    canonical_port,
    check_duration_bounds,
    format_duration,
    normalize_source_prefix,
    parse_duration,
    port_prefixes,
    port_sort_key,
    prefix_sort_key,
    validate_port_number,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._nsg import source_set

_UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; module_utils may run on older targets

MIN_REQUEST_SECONDS = 60
"""Smallest access request duration this collection sends (1 minute)."""
DEFAULT_REQUEST_DURATION = "PT1H"
ANY_SOURCE_VALUES = ("*", "0.0.0.0/0", "internet", "any")
"""Request sources meaning "from anywhere" (compared case-insensitively)."""
REQUEST_STATUS_INITIATED = "Initiated"
ACTIVE_STATUSES = ("initiated", "initiating")
"""Port statuses of a request in effect or about to be: the 2020-01-01 spec's own initiate example
answers ``Initiating``; a rerun during the apply window must not supersede its own request."""


ActiveRequest = namedtuple("ActiveRequest", "vm_id port sources start_time end_time status requestor justification")
ActiveRequest.__doc__ = """The request currently effective for one VM port. ``vm_id`` is lower-case,
``sources`` a sorted tuple of prefixes (empty when the service recorded none), times aware UTC."""


def active_requests(policy, now):
    """Currently effective requests of a policy, keyed by ``(vm id lower-case, port number)``.

    A port request is effective when its status is ``Initiated`` (or ``Initiating``, reported while
    Defender applies it; its status is then given as ``Initiated``) and its ``endTimeUtc`` is after
    ``now`` (an aware datetime). When several qualify, the latest ``startTimeUtc`` wins (later in
    the list on a tie). Requests with unparseable times are ignored.
    """
    now = parse_azure_datetime(now)
    found = {}
    for request in as_list(rest_field(properties_of(policy), "requests")):
        try:
            start = parse_azure_datetime(rest_field(request, "startTimeUtc"))
        except JitValidationError:
            continue
        for vm in as_list(rest_field(request, "virtualMachines")):
            vm_key = normalize_id(rest_field(vm, "id", ""))
            for port in as_list(rest_field(vm, "ports")):
                status = str(rest_field(port, "status", ""))
                try:
                    end = parse_azure_datetime(rest_field(port, "endTimeUtc"))
                    number = validate_port_number(rest_field(port, "number"))
                except JitValidationError:
                    continue
                if status.lower() not in ACTIVE_STATUSES or end <= now:
                    continue
                key = (vm_key, number)
                if key in found and found[key].start_time > start:
                    continue
                found[key] = ActiveRequest(
                    vm_id=vm_key,
                    port=number,
                    sources=tuple(sorted(set(port_prefixes(port)), key=prefix_sort_key)),
                    start_time=start,
                    end_time=end,
                    status=REQUEST_STATUS_INITIATED,
                    requestor=rest_field(request, "requestor"),
                    justification=rest_field(request, "justification"),
                )
    return found


APPLY_WINDOW_SECONDS = 120
"""How long after an initiate Defender for Cloud may still be writing its allow rules ("seconds,
sometimes up to about two minutes"). A close treats a younger request without all its rules as
pending (it waits for them); an older one without rules will get none (closed earlier, or failed)."""


def may_still_apply(active, now):
    """Whether Defender may still be applying the allow rules of ``active`` (an :class:`ActiveRequest`)."""
    return (parse_azure_datetime(now) - active.start_time).total_seconds() < APPLY_WINDOW_SECONDS


def default_renew_margin(duration_seconds):
    """Renewal margin: the smaller of 10 minutes and half the duration."""
    return min(600, duration_seconds // 2)


def needed_end_time(now, duration_seconds, renew_margin_seconds=None):
    """Latest acceptable end of an existing request: ``now + duration - margin``."""
    margin = default_renew_margin(duration_seconds) if renew_margin_seconds is None else renew_margin_seconds
    return parse_azure_datetime(now) + timedelta(seconds=duration_seconds - margin)


def request_covers(active, sources, needed_end, requestor=None):
    """Whether an active request makes a new initiate unnecessary (idempotency).

    True when ``active`` (an :class:`ActiveRequest` or ``None``) ends at or after ``needed_end``
    and its source matches: with ``sources`` given (a list of prefixes), the same set of
    prefixes; with ``sources`` ``None`` (the service will use the caller's address, which is not
    known here), the request must come from the same ``requestor`` (case-insensitive) - without
    a ``requestor`` nothing can be proven and the answer is False.
    """
    if active is None or active.status != REQUEST_STATUS_INITIATED:
        return False
    if active.end_time < parse_azure_datetime(needed_end):
        return False
    if sources is None:
        return requestor is not None and active.requestor is not None and str(active.requestor).lower() == str(requestor).lower()
    return source_set(active.sources) == source_set(sources)


def is_any_source(value):
    """True for sources meaning "anywhere": ``*``, ``0.0.0.0/0``, ``Internet``, ``Any``."""
    return isinstance(value, str) and value.strip().lower() in ANY_SOURCE_VALUES


BROAD_SOURCE_PREFIX_LENGTH = 8
"""A request source shorter than /8 (more than 16,777,216 addresses, a sixteenth of the IPv4 space
or more) admits a large part of the Internet: like ``*``, it needs ``allow_any_source``."""


def broad_source_reason(prefix):
    """Why a canonical source counts as "anywhere", or ``None`` for a specific source."""
    if prefix == "*":
        return "opens the port to any source"
    network = ipaddress.ip_network(prefix, strict=False)
    if network.prefixlen < BROAD_SOURCE_PREFIX_LENGTH:
        return f"admits {network.num_addresses:,} addresses (broader than /{BROAD_SOURCE_PREFIX_LENGTH}, a large part of the Internet)"
    return None


def normalize_request_sources(sources, allow_any_source=False, name="source_address_prefixes"):
    """Validate request sources; return a sorted tuple, or ``None`` when none are given.

    IPv6 is refused (the service rejects it). Sources meaning "anywhere" (``*``, ``Internet``...,
    which become ``*``) and prefixes broader than :data:`BROAD_SOURCE_PREFIX_LENGTH` are refused
    unless ``allow_any_source``.
    """
    items = as_list(sources)
    if not items:
        return None
    result = set()
    for item in items:
        prefix = "*" if is_any_source(item) else normalize_source_prefix(item, name=name)
        reason = broad_source_reason(prefix)
        if reason and not allow_any_source:
            raise JitValidationError(f"{name} entry {item!r} {reason}: give specific IPv4 addresses or CIDRs, or set allow_any_source: true")
        result.add(prefix)
    if "*" in result:
        return ("*",)
    return tuple(sorted(result, key=prefix_sort_key))


def policy_prefix_for(source, allowed):
    """How a request source stands against a port's allowed prefixes (``allowed``, canonical):
    ``(True, source)`` when the policy allows anything (``*``) or lists the source itself (the
    same prefix: 10.0.0.1 is 10.0.0.1/32); ``(False, prefix)`` when it lies strictly inside an
    allowed ``prefix``; ``(False, None)`` when it is outside every one of them.

    Whether Azure accepts a source strictly inside a policy prefix is not documented consistently
    (a public report, MicrosoftDocs/azure-docs#53026, shows it refused as "not a subset of
    policy"), so the collection never relies on it: see ``use_policy_source``.
    """
    if "*" in allowed:
        return True, source
    if source == "*":
        return False, None
    network = ipaddress.ip_network(source, strict=False)
    inside = None
    for prefix in allowed:
        try:
            container = ipaddress.ip_network(prefix, strict=False)
        except ValueError:  # a service tag or other text: a concrete source cannot be shown inside it
            continue
        if container.version != network.version:
            continue
        if network == container:
            return True, source
        if inside is None and network.subnet_of(container):
            inside = prefix
    return False, inside


def build_initiate_ports(policy_vm, seconds, *, ports=None, sources=None, vm_label=None, now=None, shown=None, use_policy_source=False):
    """Validate a request against a VM's policy entry and return the initiate ``ports`` list.

    * ``ports``: port numbers to open (default every port of the VM's policy entry); each must be
      in the entry (the message lists the allowed ports).
    * ``seconds``: the request's duration (parsed once, by :func:`parse_request_options`), at most
      the port's ``maxRequestAccessDuration`` (the message says the maximum); ``shown`` is how the
      user wrote it, for messages.
    * ``sources``: at most one prefix, already normalised (:func:`normalize_request_sources`); it
      must be one of the port's allowed prefixes (policy ``*`` allows anything). One strictly
      inside an allowed prefix is refused, or replaced by that prefix with ``use_policy_source``
      (see :func:`policy_prefix_for`). ``None`` omits the prefix so the service uses the
      caller's address.
    * ``now``: the time ``endTimeUtc`` (now + duration) counts from; default the current UTC time.

    Returns ``[{"number", "endTimeUtc", ["allowedSourceAddressPrefix"]}]``: exactly the fields of
    the 2020-01-01 ``JitNetworkAccessPolicyInitiatePort`` (which has no duration and a single
    source prefix per port; more than one source is refused here, before any write).
    """
    label = vm_label or rest_field(policy_vm, "id", "?")
    policy_ports = OrderedDict()
    for port in sorted((canonical_port(item) for item in as_list(rest_field(policy_vm, "ports"))), key=port_sort_key):
        policy_ports[port["number"]] = port
    allowed_text = ", ".join(str(number) for number in policy_ports) or "none"
    wanted = list(policy_ports) if ports is None else [validate_port_number(item, name="port") for item in as_list(ports)]
    if not wanted:
        raise JitValidationError(f"no ports to open on VM {label!r}: its JIT policy allows ports {allowed_text}")
    request_sources = tuple(sources or ())
    if len(request_sources) > 1:
        raise JitValidationError(
            f"source_address_prefixes {', '.join(request_sources)}: a JIT request admits one source prefix per port;"
            " give one (a CIDR that covers them), or open once per source"
        )
    start = parse_azure_datetime(now) if now is not None else datetime.now(_UTC)
    result = []
    for number in OrderedDict.fromkeys(wanted):
        if number not in policy_ports:
            raise JitValidationError(f"port {number} is not in the JIT policy of VM {label!r}: allowed ports {allowed_text}")
        policy_port = policy_ports[number]
        maximum = parse_duration(policy_port["maxRequestAccessDuration"], name="maxRequestAccessDuration")
        shown = shown or format_duration(seconds)
        check_duration_bounds(seconds, name=f"duration for port {number} on VM {label!r}", minimum=MIN_REQUEST_SECONDS, maximum=maximum, shown=shown)
        allowed = port_prefixes(policy_port)
        source = request_sources[0] if request_sources else None
        if source is not None:
            listed, container = policy_prefix_for(source, allowed)
            if not listed and container is None:
                raise JitValidationError(
                    f"source {source!r} is not within the allowed source prefixes of port {number} on VM {label!r}: allowed {', '.join(allowed)}"
                )
            if not listed and not use_policy_source:
                raise JitValidationError(
                    f"source {source!r} lies inside {container!r} but is not one of the allowed source prefixes of port {number} on VM {label!r}"
                    f" ({', '.join(allowed)}): Azure may refuse a request that is not exactly one of them. Request {container!r} itself,"
                    f" or set use_policy_source=true to request the policy's prefix (it admits all of {container})"
                )
            if not listed:
                source = container  # the user opted in: the policy's own prefix, wider than asked
        entry = {"number": number, "endTimeUtc": format_azure_datetime(start + timedelta(seconds=seconds))}
        if source is not None:
            entry["allowedSourceAddressPrefix"] = source
        result.append(entry)
    return result


def recorded_sources(response):
    """``{(vm id lower, port): (prefix, ...)}`` from an initiate's answer, where the service names them."""
    result = {}
    data = response if isinstance(response, dict) else {}
    for vm in data.get("virtualMachines") or []:
        for port in vm.get("ports") or []:
            prefixes = port_prefixes(port)
            if prefixes and port.get("number") is not None:
                result[(normalize_id(vm.get("id", "")), int(port["number"]))] = tuple(prefixes)
    return result


def build_initiate_body(vm_ports, justification=None):
    """The ``initiate`` request body.

    ``vm_ports`` is an ordered mapping (or list of pairs) ``vm id -> ports`` from
    :func:`build_initiate_ports`. ``justification`` is omitted when ``None``.
    """
    pairs = vm_ports.items() if isinstance(vm_ports, dict) else vm_ports
    body = {"virtualMachines": [{"id": vm, "ports": list(ports)} for vm, ports in pairs]}
    if justification is not None:
        body["justification"] = justification
    return body


# --------------------------------------------------------------------------------------------------
# Options and answers of jit_request


def default_justification(user=None, host=None):
    """``Ansible jitaccess.azure.jit_request by <user>@<host>`` (the machine running the module)."""
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError, ImportError):
            user = "unknown"
    if host is None:
        host = socket.gethostname() or "unknown"
    return "Ansible jitaccess.azure.jit_request by %s@%s" % (user, host)


def normalize_single_source(sources, allow_any_source):
    """Request sources for ``initiate``: ``None`` (the service uses the caller's address) or a
    one-element tuple: the initiate API takes a single ``allowedSourceAddressPrefix`` per port."""
    normalized = normalize_request_sources(sources, allow_any_source=allow_any_source)
    if normalized is not None and len(normalized) > 1:
        raise JitValidationError(
            "source_address_prefixes %s has %d entries: the JIT initiate API takes one source per port; give one address or one CIDR that covers them"
            % (", ".join(normalized), len(normalized))
        )
    return normalized


MIN_LEASE_SECONDS = 300
"""Shortest lease (5 minutes): long enough for a renewal to be applied before the lease ends."""


def lease_renew_before(lease_seconds):
    """Seconds before a lease ends at which jit_guard renews it: half the lease, at most the apply
    window plus one minute (3 min), so that the renewal is applied before the old request ends."""
    return min(lease_seconds // 2, APPLY_WINDOW_SECONDS + 60)


def parse_lease(value, duration_seconds):
    """Seconds of the lease (``None`` when not set): 5 minutes to the duration."""
    if value is None:
        return None
    seconds = parse_duration(value, name="lease")
    # the upper bound is the duration: a lease never keeps access longer than asked
    check_duration_bounds(seconds, name="lease (at most the duration)", minimum=MIN_LEASE_SECONDS, maximum=duration_seconds, shown=value)
    return seconds


def parse_request_duration(value):
    """Seconds of the requested duration: 1 minute to 24 hours (each port's maximum is checked later)."""
    seconds = parse_duration(value, name="duration")
    check_duration_bounds(seconds, name="duration", minimum=MIN_REQUEST_SECONDS, maximum=MAX_MAX_REQUEST_ACCESS_SECONDS, shown=value)
    return seconds


def parse_renew_margin(value, duration_seconds):
    """Seconds of the renewal margin; default ``min(10 min, duration / 2)``; must be below the duration."""
    if value is None:
        return default_renew_margin(duration_seconds)
    seconds = parse_duration(value, name="renew_margin")
    if seconds >= duration_seconds:
        raise JitValidationError(
            "renew_margin %r (%s) is not less than duration (%s): allowed 0 to %s"
            % (value, format_duration(seconds), format_duration(duration_seconds), format_duration(duration_seconds - 1))
        )
    return seconds


def parse_port_list(values, name):
    """Port numbers of an option (order kept, repeats dropped); ``None`` stays ``None`` (every port
    of the policy). An empty list is refused: it would open nothing or, read loosely, everything."""
    if values is None:
        return None
    if not values:
        raise JitValidationError("%s is empty: give at least one port, or omit it for every port of the policy" % name)
    return tuple(OrderedDict.fromkeys(validate_port_number(value, name="port in %s" % name) for value in values))


VM_REFERENCE_KEYS = ("id", "name", "resource_group")


@dataclass(frozen=True)
class VmTarget:
    """One ``virtual_machines`` entry: how it names the VM, and its own ports (``None``: the task's)."""

    reference: dict
    ports: tuple | None

    @property
    def label(self):
        return self.reference.get("id") or self.reference.get("name")


@dataclass(frozen=True)
class RequestOptions:
    """jit_request's options, parsed and checked once; everything after reads only this."""

    state: str
    targets: tuple
    ports: tuple | None
    sources: tuple | None
    allow_any_source: bool
    duration: int
    duration_text: str
    renew_margin: int
    justification: str
    lease: int | None = None
    use_policy_source: bool = False
    force: bool = False
    wait: bool = True
    wait_timeout: int = 300
    stale_only: bool = False
    bastion: object = None
    """The ``bastion`` option as given (``_arm.bastion_reference`` reads it; checked for shape here); opening only."""

    def ports_for(self, target):
        """The ports asked for on one VM: its own, else the task's (``None``: every policy port)."""
        return target.ports if target.ports is not None else self.ports

    @property
    def request_seconds(self):
        """How long each initiated request lasts: the lease when set (jit_guard renews it), else the duration."""
        return self.lease or self.duration

    @property
    def source(self):
        """The one request source, or ``None`` when the service is to use the caller's address."""
        return self.sources[0] if self.sources else None


def parse_request_options(params, justification=None):
    """:class:`RequestOptions` from the module's ``params``; raises :class:`JitValidationError`
    naming the first bad value (nothing has been read or written yet)."""
    duration = parse_request_duration(params["duration"])
    lease = parse_lease(params.get("lease"), duration) if params["state"] == "present" else None
    margin = parse_renew_margin(params["renew_margin"], lease or duration)
    bastion = params.get("bastion") if params["state"] == "present" else None  # closing: every source
    if bastion is not None:
        bastion_reference(bastion, "placeholder")  # shape only: the subscription comes later
    if bastion is not None and params["source_address_prefixes"]:
        raise JitValidationError(
            "bastion and source_address_prefixes are mutually exclusive: bastion %r makes the Bastion subnet the source; remove one" % (bastion,)
        )
    if params["state"] == "present":
        sources = normalize_single_source(params["source_address_prefixes"], params["allow_any_source"])
    else:  # closing: any source named may be closed
        sources = normalize_request_sources(params["source_address_prefixes"], allow_any_source=True)
    if params["wait_timeout"] < 0:
        raise JitValidationError("wait_timeout %s is negative: allowed 0 or more seconds" % params["wait_timeout"])
    if not params["virtual_machines"]:
        raise JitValidationError("virtual_machines is empty: name at least one VM")
    targets = []
    for entry in params["virtual_machines"]:
        reference = {key: entry.get(key) for key in VM_REFERENCE_KEYS}
        vm_id_from_reference(reference, "placeholder")  # shape only: the subscription comes later
        targets.append(VmTarget(reference, parse_port_list(entry.get("ports"), "ports of virtual_machines entry %s" % (reference["id"] or reference["name"]))))
    return RequestOptions(
        state=params["state"],
        targets=tuple(targets),
        ports=parse_port_list(params["ports"], "ports"),
        sources=sources,
        allow_any_source=params["allow_any_source"],
        duration=duration,
        duration_text=params["duration"],
        renew_margin=margin,
        lease=lease,
        use_policy_source=bool(params.get("use_policy_source")),
        justification=params["justification"] or justification or default_justification(),
        force=params["force"],
        wait=params["wait"],
        wait_timeout=params["wait_timeout"],
        stale_only=params["stale_only"],
        bastion=bastion,
    )


@dataclass
class PortResult:
    """One port of one VM in jit_request's result (``virtual_machines[].ports[]``)."""

    number: int
    action: str
    source: str | None = None
    end_time_utc: str | None = None
    status: str | None = None
    open: bool = False
    access: list = field(default_factory=list)

    def as_dict(self):
        return {
            "number": self.number,
            "source": self.source,
            "end_time_utc": self.end_time_utc,
            "status": self.status,
            "open": self.open,
            "action": self.action,
            "access": list(self.access),
        }


def choose_policy(candidates, vm_record):
    """The policy entry to request on when a VM is in several policies.

    Prefer the policy in the VM's resource group and region, then the one named ``default``, then
    the first by id: deterministic, and what jit_policy creates by default.
    """

    def rank(item):
        policy = item[0]
        key = parse_jit_policy_id(policy["id"])
        same_place = key.resource_group.lower() == str(vm_record.get("resource_group", "")).lower() and key.location == vm_record.get("location")
        return (0 if same_place else 1, 0 if key.policy_name == DEFAULT_POLICY_NAME else 1, policy["id"].lower())

    return sorted(candidates, key=rank)[0] if candidates else None


def token_identities(token):
    """Principal names in a JWT access token (``upn``, ``unique_name``, ``oid``, ``appid``...).

    The JIT request's ``requestor`` is one of these; used to recognise our own requests when the
    source is left to the service. The token is not verified: it only names ourselves.
    """
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (IndexError, ValueError, UnicodeError, AttributeError):
        return []
    names = []
    for claim in ("upn", "unique_name", "preferred_username", "email", "name", "oid", "appid", "azp", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value and value not in names:
            names.append(value)
    return names


def server_time(date_header, fallback):
    """Aware UTC time from an HTTP ``Date`` header (Azure's clock), else ``fallback``."""
    if date_header:
        try:
            parsed = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return parsed.replace(tzinfo=_UTC) if parsed.tzinfo is None else parsed.astimezone(_UTC)
    return fallback


def earliest(times):
    values = [parse_azure_datetime(value) for value in times if value]
    return format_azure_datetime(min(values)) if values else None


def policy_label(policy_id):
    """A short name for a JIT policy in progress lines: ``rg-web/default (westeurope)``."""
    try:
        key = parse_jit_policy_id(policy_id)
    except JitValidationError:
        return str(policy_id)
    return "%s/%s (%s)" % (key.resource_group, key.policy_name, key.location)
