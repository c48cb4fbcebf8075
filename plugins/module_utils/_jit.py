# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic for Microsoft Defender for Cloud just-in-time (JIT) VM access.

Nothing here talks to Azure or imports an SDK: the modules read state, hand it to these functions,
and write what they return. Every function that validates user input raises
:class:`JitValidationError` whose message names the offending value and what is allowed, so a
module can fail with ``str(exc)`` before its first write.

Shapes used throughout:

* *REST shape* of a policy VM entry (what the JIT policy GET returns and PUT accepts, camelCase)::

      {"id": "/subscriptions/.../virtualMachines/vm1",
       "ports": [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*",
                  "maxRequestAccessDuration": "PT3H"}]}

  Readers also accept the Azure SDK's ``as_dict()`` spelling (snake_case, ``properties`` flattened).
* *Canonical form*: the REST shape with ports sorted by number, protocol upper-case (``TCP``,
  ``UDP``, ``*``), one prefix as ``allowedSourceAddressPrefix`` and several, sorted, as
  ``allowedSourceAddressPrefixes``, durations as canonical ISO 8601 (``PT3H``, ``PT1H30M``,
  ``PT24H``) and, for comparisons, the VM id lower-cased. Read-only fields (``publicIpAddress``)
  are dropped.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from collections import OrderedDict, namedtuple

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import (
    DEFAULT_POLICY_NAME,
    JitValidationError,
    PolicyKey,
    as_list,
    normalize_id,
    normalize_location,
    parse_vm_id,
    properties_of,
    rest_field,
    whole_number,
)

# --------------------------------------------------------------------------------------------------
# Errors and constants


MIN_MAX_REQUEST_ACCESS_SECONDS = 5 * 60
"""Smallest ``maxRequestAccessDuration`` the service accepts (5 minutes)."""
MAX_MAX_REQUEST_ACCESS_SECONDS = 24 * 3600
"""Largest ``maxRequestAccessDuration`` the service accepts (1 day)."""

PORT_MIN = 0
PORT_MAX = 65535
PROTOCOLS = ("TCP", "UDP", "*")
DEFAULT_PROTOCOL = "TCP"
DEFAULT_SOURCE_PREFIX = "*"
DEFAULT_MAX_REQUEST_ACCESS_DURATION = "PT3H"
DEFAULT_PORTS_BY_OS = {"linux": (22,), "windows": (3389, 5985, 5986)}
"""Ports JIT protects when the user names none, by ``os_type`` (lower-case)."""


_USER_PORT_KEYS = ("number", "protocol", "allowed_source_address_prefix", "allowed_source_address_prefixes", "max_request_access_duration")


# --------------------------------------------------------------------------------------------------
# Durations

# re.ASCII: \d is 0-9 and \s plain whitespace, so Unicode digits never read as numbers.
_ISO_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$",
    re.IGNORECASE | re.ASCII,
)
_SHORT_DURATION_RE = re.compile(
    r"^(?=\d)(?:(?P<days>\d+)\s*d)?\s*(?:(?P<hours>\d+)\s*h)?\s*(?:(?P<minutes>\d+)\s*m)?\s*(?:(?P<seconds>\d+)\s*s)?$",
    re.IGNORECASE | re.ASCII,
)
_ISO_CALENDAR_RE = re.compile(r"^P(?:\d+[YW]|\d+M|[^T]*[YW])", re.IGNORECASE | re.ASCII)
_DURATION_FORMS = "ISO 8601 such as PT3H, PT90M, PT1H30M, P1D, or short forms such as 3h, 90m, 1h30m, 300s, 1d, or a number of seconds"


def parse_duration(value, name="duration"):
    """Parse a duration and return whole seconds.

    Accepted, case-insensitively:

    * ISO 8601 time durations with days, hours, minutes and seconds: ``PT3H``, ``PT180M``,
      ``PT1H30M``, ``PT3600S``, ``P1D``, ``P0DT2H``. Years, months, weeks and fractions are
      refused (their length is ambiguous or the service does not accept them).
    * Short forms: any of ``<n>d``, ``<n>h``, ``<n>m``, ``<n>s`` in that order, optionally with
      spaces: ``3h``, ``90m``, ``1h30m``, ``1h 30m``, ``300s``, ``1d``.
    * A plain integer (``int`` or a string of digits) is a number of **seconds**.

    Bounds are not checked here; see :func:`check_duration_bounds` and :func:`normalize_duration`.
    ``name`` names the option in error messages.
    """
    if isinstance(value, bool):
        raise JitValidationError(f"{name} {value!r} is not a duration: use {_DURATION_FORMS}")
    if isinstance(value, int):
        if value < 0:
            raise JitValidationError(f"{name} {value} is negative: a duration must be 0 seconds or more")
        return value
    if not isinstance(value, str):
        raise JitValidationError(f"{name} {value!r} is not a duration: use {_DURATION_FORMS}")
    text = value.strip()
    if re.fullmatch(r"[0-9]+", text, re.ASCII):  # a plain number of seconds
        return whole_number(text, name, _DURATION_FORMS)
    match = _ISO_DURATION_RE.match(text) or _SHORT_DURATION_RE.match(text)
    if not match and _ISO_CALENDAR_RE.match(text):
        raise JitValidationError(f"{name} {value!r} uses years, months or weeks, whose length varies: use days, hours, minutes or seconds (e.g. P1D, PT3H)")
    if not match:
        raise JitValidationError(f"{name} {value!r} is not a valid duration: use {_DURATION_FORMS}")
    parts = {key: whole_number(number, name, _DURATION_FORMS) for key, number in match.groupdict(default="0").items()}
    return parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]


def format_duration(seconds):
    """Canonical ISO 8601 for a number of seconds: hours, minutes, seconds, zero parts omitted.

    Days are expressed as hours so one spelling exists per length: ``86400 -> "PT24H"``,
    ``5400 -> "PT1H30M"``, ``0 -> "PT0S"``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise JitValidationError(f"duration {seconds!r} cannot be formatted: expected a whole number of seconds, 0 or more")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if secs or text == "PT":
        text += f"{secs}S"
    return text


def describe_duration(seconds):
    """Human wording for error messages: ``5400 -> "1 hour 30 minutes"``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    words = []
    for amount, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")):
        if amount:
            words.append(f"{amount} {unit}{'s' if amount != 1 else ''}")
    return " ".join(words) or "0 seconds"


def check_duration_bounds(seconds, name="duration", minimum=MIN_MAX_REQUEST_ACCESS_SECONDS, maximum=MAX_MAX_REQUEST_ACCESS_SECONDS, shown=None):
    """Raise unless ``minimum <= seconds <= maximum``; return ``seconds``.

    ``shown`` is the value as the user wrote it, for the message (defaults to the canonical form).
    """
    if minimum <= seconds <= maximum:
        return seconds
    given = shown if shown is not None else format_duration(seconds)
    canonical = format_duration(seconds)
    given_text = f"{given!r} ({canonical})" if str(given).upper() != canonical else f"{canonical}"
    raise JitValidationError(
        f"{name} {given_text} is out of range: allowed {format_duration(minimum)} ({describe_duration(minimum)})"
        f" to {format_duration(maximum)} ({describe_duration(maximum)})"
    )


def normalize_duration(value, name="max_request_access_duration", minimum=MIN_MAX_REQUEST_ACCESS_SECONDS, maximum=MAX_MAX_REQUEST_ACCESS_SECONDS):
    """Parse, bounds-check (default 5 minutes to 24 hours) and return the canonical ISO string."""
    seconds = parse_duration(value, name=name)
    check_duration_bounds(seconds, name=name, minimum=minimum, maximum=maximum, shown=value)
    return format_duration(seconds)


def canonical_duration(value):
    """Canonical ISO form of a duration read from Azure, or the value unchanged if unparseable.

    Lenient on purpose: used to compare what the service holds, never to validate input.
    """
    if isinstance(value, str):
        return _canonical_duration_text(value)
    try:
        return format_duration(parse_duration(value))
    except JitValidationError:
        return value


@functools.lru_cache(maxsize=256)
def _canonical_duration_text(text):
    """:func:`canonical_duration` of a text, remembered: a fleet's policies repeat a few durations
    tens of thousands of times."""
    try:
        return format_duration(parse_duration(text))
    except JitValidationError:
        return text


# --------------------------------------------------------------------------------------------------
# Ports, protocols, source prefixes


def validate_port_number(value, name="port"):
    """Return ``value`` as an ``int`` in 0-65535 (digit strings accepted, booleans refused)."""
    value = whole_number(value, name, f"{PORT_MIN}-{PORT_MAX}")
    if not PORT_MIN <= value <= PORT_MAX:
        raise JitValidationError(f"{name} {value} is out of range: allowed {PORT_MIN}-{PORT_MAX}")
    return value


def normalize_protocol(value, name="protocol"):
    """``tcp``/``Tcp``/``TCP`` -> ``TCP``, likewise ``UDP``; ``*`` stays ``*``."""
    text = value.strip().upper() if isinstance(value, str) else None
    if text not in PROTOCOLS:
        raise JitValidationError(f"{name} {value!r} is not valid: allowed {', '.join(PROTOCOLS)}")
    return text


def normalize_source_prefix(value, name="allowed_source_address_prefixes"):
    """Validate a policy source prefix: ``*``, an IPv4 address or an IPv4 CIDR; return it canonical.

    Addresses stay addresses and CIDRs stay CIDRs (``10.0.0.1`` and ``10.0.0.1/32`` are kept as
    written, because the service stores what it is sent). A CIDR with host bits set is refused
    with the network to use instead.
    """
    if not isinstance(value, str) or not value.strip():
        raise JitValidationError(f"{name} entry {value!r} is not valid: allowed an IPv4 address, an IPv4 CIDR such as 10.0.0.0/24, or '*'")
    text = value.strip()
    if text == "*":
        return text
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise JitValidationError(f"{name} entry {value!r} is not valid: allowed an IPv4 address, an IPv4 CIDR such as 10.0.0.0/24, or '*'") from None
    if interface.version != 4:
        raise JitValidationError(f"{name} entry {value!r} is IPv6, which JIT does not support: allowed an IPv4 address, an IPv4 CIDR or '*'")
    if "/" not in text:
        return str(interface.ip)
    if interface.ip != interface.network.network_address:
        raise JitValidationError(f"{name} entry {value!r} has host bits set: use {interface.network}")
    return str(interface.network)


def prefix_sort_key(prefix):
    """Sort key for source prefixes: ``*`` first, then IPv4 numerically, then anything else by text."""
    if prefix == "*":
        return (0, 0, 0, "")
    try:
        network = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return (2, 0, 0, str(prefix).lower())
    return (1, int(network.network_address), network.prefixlen, str(prefix))


def _prefix_fields(prefixes):
    """REST fields for a list of prefixes: one -> singular key, several -> sorted plural key."""
    unique = sorted(set(prefixes), key=prefix_sort_key)
    if len(unique) == 1:
        return {"allowedSourceAddressPrefix": unique[0]}
    return {"allowedSourceAddressPrefixes": unique}


def port_prefixes(port_entry):
    """The source prefixes of a REST/SDK port entry as a list (singular and plural keys merged)."""
    prefixes = as_list(rest_field(port_entry, "allowedSourceAddressPrefixes"))
    single = rest_field(port_entry, "allowedSourceAddressPrefix")
    if single is not None:
        prefixes.append(single)
    return prefixes


def normalize_port_rule(rule, name="ports"):
    """Validate a user port rule (snake_case options) and return it in canonical REST shape.

    ``rule`` keys: ``number`` (required), ``protocol`` (default ``TCP``),
    ``allowed_source_address_prefixes`` (list, default ``['*']``) or
    ``allowed_source_address_prefix`` (one string; not both), ``max_request_access_duration``
    (default ``PT3H``, 5 minutes to 24 hours). ``None`` values mean "not set", as Ansible passes
    unset sub-options. Unknown keys are refused.
    """
    if not isinstance(rule, dict):
        raise JitValidationError(f"{name} entry {rule!r} is not valid: expected a dictionary with keys {', '.join(_USER_PORT_KEYS)}")
    unknown = sorted(key for key in rule if key not in _USER_PORT_KEYS)
    if unknown:
        raise JitValidationError(f"{name} entry has unknown key(s) {', '.join(unknown)}: allowed {', '.join(_USER_PORT_KEYS)}")
    if rule.get("number") is None:
        raise JitValidationError(f"{name} entry {rule!r} has no number: every port rule needs a port number ({PORT_MIN}-{PORT_MAX})")
    number = validate_port_number(rule["number"], name="port")
    where = f"{name} entry for port {number}"
    protocol = normalize_protocol(rule["protocol"], name=f"protocol of {where}") if rule.get("protocol") is not None else DEFAULT_PROTOCOL
    single = rule.get("allowed_source_address_prefix")
    several = rule.get("allowed_source_address_prefixes")
    if single is not None and several is not None:
        raise JitValidationError(f"{where} sets both allowed_source_address_prefix and allowed_source_address_prefixes: they are mutually exclusive, set one")
    if single is not None:
        raw = [single]
    elif several is not None:
        raw = as_list(several)
        if not raw:
            raise JitValidationError(f"allowed_source_address_prefixes of {where} is empty: give at least one prefix, or omit it to allow '*'")
    else:
        raw = [DEFAULT_SOURCE_PREFIX]
    prefixes = [normalize_source_prefix(item, name=f"allowed_source_address_prefixes of {where}") for item in raw]
    if "*" in prefixes and len(set(prefixes)) > 1:
        raise JitValidationError(
            f"allowed_source_address_prefixes of {where} combines '*' with other prefixes {sorted(set(prefixes) - {'*'})}:"
            " use '*' alone or only specific prefixes"
        )
    duration = rule.get("max_request_access_duration")
    duration = DEFAULT_MAX_REQUEST_ACCESS_DURATION if duration is None else normalize_duration(duration, name=f"max_request_access_duration of {where}")
    result = {"number": number, "protocol": protocol}
    result.update(_prefix_fields(prefixes))
    result["maxRequestAccessDuration"] = duration
    return result


def normalize_port_rules(rules, name="ports"):
    """Normalise a list of user port rules; refuse duplicate numbers; return them sorted by number."""
    result = [normalize_port_rule(rule, name=name) for rule in as_list(rules)]
    seen = set()
    for port in result:
        if port["number"] in seen:
            raise JitValidationError(f"port {port['number']} is listed more than once in {name}: each port number may appear once per VM")
        seen.add(port["number"])
    return sorted(result, key=lambda port: port["number"])


def default_port_rules(os_type, allowed_source_address_prefixes=None, max_request_access_duration=None, protocol=None):
    """The OS-aware default rules in canonical REST shape (Linux 22; Windows 3389, 5985, 5986).

    Optional overrides apply to every default port.
    """
    key = os_type.strip().lower() if isinstance(os_type, str) else None
    if key not in DEFAULT_PORTS_BY_OS:
        raise JitValidationError(f"os_type {os_type!r} has no default JIT ports: allowed Linux, Windows (or give ports explicitly)")
    return normalize_port_rules(
        [
            {
                "number": number,
                "protocol": protocol,
                "allowed_source_address_prefixes": allowed_source_address_prefixes,
                "max_request_access_duration": max_request_access_duration,
            }
            for number in DEFAULT_PORTS_BY_OS[key]
        ]
    )


def canonical_port(port_entry):
    """Canonical form of a port entry read from Azure (REST or SDK keys). Lenient: never raises
    for odd values; they are kept as they are so a comparison sees them."""
    number = rest_field(port_entry, "number")
    if isinstance(number, str):
        with contextlib.suppress(JitValidationError):  # an odd value is kept as read
            number = whole_number(number, "port", "")
    protocol = rest_field(port_entry, "protocol", DEFAULT_PROTOCOL)
    if isinstance(protocol, str) and protocol.strip().upper() in PROTOCOLS:
        protocol = protocol.strip().upper()
    result = {"number": number, "protocol": protocol}
    result.update(_prefix_fields(port_prefixes(port_entry) or [DEFAULT_SOURCE_PREFIX]))
    result["maxRequestAccessDuration"] = canonical_duration(rest_field(port_entry, "maxRequestAccessDuration", DEFAULT_MAX_REQUEST_ACCESS_DURATION))
    return result


def port_sort_key(port):
    number = port["number"]
    return (0, number, "") if isinstance(number, int) else (1, 0, str(number))


def normalize_policy_vm(entry):
    """Canonical form of one policy VM entry (REST or SDK shape) for comparison and diff.

    The id is lower-cased, ports are canonical and sorted by number, read-only fields dropped.
    Idempotent: ``normalize_policy_vm(normalize_policy_vm(x)) == normalize_policy_vm(x)``.
    """
    ports = [canonical_port(port) for port in as_list(rest_field(entry, "ports"))]
    return {"id": normalize_id(rest_field(entry, "id", "")), "ports": sorted(ports, key=port_sort_key)}


def build_policy_vm(vm_id, ports):
    """A REST policy VM entry for ``vm_id`` (kept as given) with already-normalised ``ports``."""
    return {"id": vm_id, "ports": [dict(port) for port in ports]}


# --------------------------------------------------------------------------------------------------
# Grouping VMs into policies


def group_vms_by_policy(vms, policy_name=DEFAULT_POLICY_NAME):
    """Group VMs into the policies they belong to.

    ``vms`` is an iterable of dicts with at least ``id`` (the VM id) and ``location`` (its
    region). Returns an ordered ``{PolicyKey: [vm, ...]}``; keys compare case-insensitively
    (the spelling seen first is kept) and both keys and members keep input order.
    """
    groups = OrderedDict()
    keys = {}
    for vm in vms:
        parsed = parse_vm_id(vm.get("id"))
        location = vm.get("location")
        if not isinstance(location, str) or not location.strip():
            raise JitValidationError(f"virtual machine {vm.get('id')!r} has no location: the JIT policy lives in the VM's region")
        key = PolicyKey(parsed.subscription, parsed.resource_group, normalize_location(location), policy_name)
        folded = tuple(part.lower() for part in key)
        key = keys.setdefault(folded, key)
        groups.setdefault(key, []).append(vm)
    return groups


# --------------------------------------------------------------------------------------------------
# Merging, comparing, verifying policy VM lists


def _entry_id(entry):
    return normalize_id(rest_field(entry, "id", ""))


def merge_policy_vms(existing, desired, purge=False):
    """Merge desired VM entries into a policy's existing VM list.

    VMs are matched by id, case-insensitively. A VM in ``desired`` replaces the existing entry in
    place (its position is kept); new VMs are appended in ``desired`` order. Existing entries not
    named in ``desired`` are returned as the very same objects, untouched, unless ``purge`` is true
    (then they are dropped). Duplicate ids in ``desired`` are refused; a duplicate id in
    ``existing`` keeps only its first position.
    """
    wanted = OrderedDict()
    for entry in desired:
        key = _entry_id(entry)
        if key in wanted:
            raise JitValidationError(f"virtual machine {rest_field(entry, 'id')!r} is listed more than once: each VM may appear once per policy")
        wanted[key] = entry
    merged = []
    placed = set()
    for entry in existing:
        key = _entry_id(entry)
        if key in wanted:
            if key not in placed:
                merged.append(keep_unknown_fields(entry, wanted[key]))
                placed.add(key)
        elif not purge:
            merged.append(entry)
    merged.extend(entry for key, entry in wanted.items() if key not in placed)
    return merged


_KNOWN_PORT_FIELDS = {"number", "protocol", "allowedSourceAddressPrefix", "allowedSourceAddressPrefixes", "maxRequestAccessDuration"}


def keep_unknown_fields(existing, desired):
    """``desired`` (a VM entry we build) with what ``existing`` (the entry Azure has) carries that we
    do not set: ``publicIpAddress`` (the Azure Firewall address of firewall-based JIT, writable)
    and any field this collection does not know, on the entry and on each port of the same number.
    A PUT replaces the whole policy: what we do not send back is lost."""
    if not isinstance(existing, dict) or not isinstance(desired, dict):
        return desired
    merged = {key: value for key, value in existing.items() if key not in ("id", "ports")}
    merged.update(desired)
    old_ports = {port.get("number"): port for port in as_list(existing.get("ports")) if isinstance(port, dict)}
    ports = []
    for port in as_list(desired.get("ports")):
        extra = {key: value for key, value in old_ports.get(port.get("number"), {}).items() if key not in _KNOWN_PORT_FIELDS}
        ports.append(dict(extra, **port))
    merged["ports"] = ports
    return merged


def remove_policy_vms(existing, vm_ids):
    """The existing entries without the VMs in ``vm_ids`` (case-insensitive); others untouched."""
    drop = {normalize_id(item) for item in vm_ids}
    return [entry for entry in existing if _entry_id(entry) not in drop]


def normalize_policy_vms(entries):
    """Canonical entries sorted by (lower-cased) id."""
    return sorted((normalize_policy_vm(entry) for entry in entries), key=lambda entry: entry["id"])


def policy_vms_equal(first, second):
    """True when two VM lists are the same after normalisation (order, case, spelling ignored)."""
    return normalize_policy_vms(first) == normalize_policy_vms(second)


def diff_policy_vms(before, after):
    """``{"before": [...], "after": [...]}`` of normalised entries sorted by id, for Ansible's diff."""
    return {"before": normalize_policy_vms(before), "after": normalize_policy_vms(after)}


def summarize_policy_vm_changes(before, after):
    """Compact summary: ``{"added": [ids], "changed": [ids], "removed": [ids]}`` (lower-case, sorted)."""
    old = {entry["id"]: entry for entry in normalize_policy_vms(before)}
    new = {entry["id"]: entry for entry in normalize_policy_vms(after)}
    return {
        "added": sorted(set(new) - set(old)),
        "changed": sorted(key for key in set(new) & set(old) if new[key] != old[key]),
        "removed": sorted(set(old) - set(new)),
    }


class VerifyResult(namedtuple("VerifyResult", "not_as_asked lost")):
    """Outcome of :func:`verify_policy`: ``not_as_asked`` are desired VM ids missing or different
    after the write, ``lost`` are other VM ids that should have been preserved but are gone
    (both lower-case, sorted). ``ok`` is true when both are empty."""

    __slots__ = ()

    @property
    def ok(self):
        return not self.not_as_asked and not self.lost


def verify_policy(read_back, desired, preserved_ids=(), removed_ids=()):
    """Check a policy re-read after a PUT.

    Every ``desired`` entry must be present exactly as asked (after normalisation), every id in
    ``preserved_ids`` (the VMs this run did not touch) must still be present, and every id in
    ``removed_ids`` must be gone (reported in ``not_as_asked``). A non-ok result after a
    successful PUT means a concurrent writer replaced the list: re-merge and retry.
    """
    current = {entry["id"]: entry for entry in normalize_policy_vms(read_back)}
    not_as_asked = [entry["id"] for entry in normalize_policy_vms(desired) if current.get(entry["id"]) != entry]
    not_as_asked += [normalize_id(item) for item in removed_ids if normalize_id(item) in current]
    lost = [normalize_id(item) for item in preserved_ids if normalize_id(item) not in current]
    return VerifyResult(sorted(set(not_as_asked)), sorted(set(lost)))


def index_policies(policies):
    """``{vm id lower: [(policy, entry), ...]}`` over every policy's VM entries (policies sorted by id)."""
    index = {}
    for policy in sorted(policies, key=lambda item: normalize_id(item.get("id") or "")):
        for entry in policy_vm_entries(policy):
            index.setdefault(normalize_id(rest_field(entry, "id", "")), []).append((policy, entry))
    return index


def policy_vm_entries(policy):
    """The VM entries of a policy resource (REST ``properties.virtualMachines`` or SDK
    ``virtual_machines``); ``[]`` for ``None`` (policy absent)."""
    if not policy:
        return []
    return list(as_list(rest_field(properties_of(policy), "virtualMachines")))


def find_policy_vm(policy_or_entries, vm_id_value):
    """The entry for ``vm_id_value`` (case-insensitive) in a policy or a list of entries, or ``None``."""
    entries = policy_or_entries if isinstance(policy_or_entries, list) else policy_vm_entries(policy_or_entries)
    key = normalize_id(vm_id_value)
    for entry in entries:
        if _entry_id(entry) == key:
            return entry
    return None


def servers_plan(subscription_id, pricing):
    """What the Defender for Servers pricing of a subscription (REST JSON, or ``None`` when it
    could not be read) means for JIT: ``{subscription_id, pricing_tier, sub_plan, jit_available}``.
    JIT exists only with Plan 2 (tier ``Standard``, sub-plan ``P2``; a Standard pricing without a
    sub-plan predates the plans and is Plan 2). ``jit_available`` is ``None`` when unknown."""
    if not isinstance(pricing, dict):
        return {"subscription_id": subscription_id, "pricing_tier": None, "sub_plan": None, "jit_available": None}
    props = properties_of(pricing)
    tier = props.get("pricingTier")
    sub_plan = props.get("subPlan")
    available = tier == "Standard" and sub_plan in (None, "P2")
    return {"subscription_id": subscription_id, "pricing_tier": tier, "sub_plan": sub_plan, "jit_available": available}
