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

import ipaddress
import re
from collections import OrderedDict, namedtuple
from datetime import datetime, timedelta, timezone

_UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; module_utils may run on older targets

# --------------------------------------------------------------------------------------------------
# Errors and constants


class JitValidationError(ValueError):
    """A user input (or a value read back from Azure) is not valid.

    The message names the offending value and the allowed range or choices.
    """


MIN_MAX_REQUEST_ACCESS_SECONDS = 5 * 60
"""Smallest ``maxRequestAccessDuration`` the service accepts (5 minutes)."""
MAX_MAX_REQUEST_ACCESS_SECONDS = 24 * 3600
"""Largest ``maxRequestAccessDuration`` the service accepts (1 day)."""
MIN_REQUEST_SECONDS = 60
"""Smallest access request duration this collection sends (1 minute)."""

PORT_MIN = 0
PORT_MAX = 65535
PROTOCOLS = ("TCP", "UDP", "*")
DEFAULT_PROTOCOL = "TCP"
DEFAULT_SOURCE_PREFIX = "*"
DEFAULT_MAX_REQUEST_ACCESS_DURATION = "PT3H"
DEFAULT_REQUEST_DURATION = "PT1H"
DEFAULT_POLICY_NAME = "default"
DEFAULT_PORTS_BY_OS = {"linux": (22,), "windows": (3389, 5985, 5986)}
"""Ports JIT protects when the user names none, by ``os_type`` (lower-case)."""

ANY_SOURCE_VALUES = ("*", "0.0.0.0/0", "internet", "any")
"""Request sources meaning "from anywhere" (compared case-insensitively)."""

REQUEST_STATUS_INITIATED = "Initiated"

_USER_PORT_KEYS = ("number", "protocol", "allowed_source_address_prefix", "allowed_source_address_prefixes", "max_request_access_duration")


# --------------------------------------------------------------------------------------------------
# Small helpers


def _snake(name):
    """``allowedSourceAddressPrefix`` -> ``allowed_source_address_prefix``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _get(data, camel, default=None):
    """Read ``camel`` (REST spelling) or its snake_case twin (SDK ``as_dict()``) from a dict.

    ``None`` values count as absent.
    """
    value = data.get(camel)
    if value is None:
        value = data.get(_snake(camel))
    return default if value is None else value


def _props(resource):
    """The ``properties`` of a REST resource, or the resource itself when already flattened (SDK)."""
    props = resource.get("properties")
    return props if isinstance(props, dict) else resource


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


# --------------------------------------------------------------------------------------------------
# Durations

_ISO_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$",
    re.IGNORECASE,
)
_SHORT_DURATION_RE = re.compile(
    r"^(?=\d)(?:(?P<days>\d+)\s*d)?\s*(?:(?P<hours>\d+)\s*h)?\s*(?:(?P<minutes>\d+)\s*m)?\s*(?:(?P<seconds>\d+)\s*s)?$",
    re.IGNORECASE,
)
_ISO_CALENDAR_RE = re.compile(r"^P(?:\d+[YW]|\d+M|[^T]*[YW])", re.IGNORECASE)
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
    if text.isdigit():
        return int(text)
    match = _ISO_DURATION_RE.match(text) or _SHORT_DURATION_RE.match(text)
    if not match and _ISO_CALENDAR_RE.match(text):
        raise JitValidationError(f"{name} {value!r} uses years, months or weeks, whose length varies: use days, hours, minutes or seconds (e.g. P1D, PT3H)")
    if not match:
        raise JitValidationError(f"{name} {value!r} is not a valid duration: use {_DURATION_FORMS}")
    parts = {key: int(number) for key, number in match.groupdict(default="0").items()}
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
    try:
        return format_duration(parse_duration(value))
    except JitValidationError:
        return value


# --------------------------------------------------------------------------------------------------
# Ports, protocols, source prefixes


def validate_port_number(value, name="port"):
    """Return ``value`` as an ``int`` in 0-65535 (digit strings accepted, booleans refused)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise JitValidationError(f"{name} {value!r} is not a port number: allowed {PORT_MIN}-{PORT_MAX}")
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
    prefixes = _as_list(_get(port_entry, "allowedSourceAddressPrefixes"))
    single = _get(port_entry, "allowedSourceAddressPrefix")
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
        raw = _as_list(several)
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
    result = [normalize_port_rule(rule, name=name) for rule in _as_list(rules)]
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
    number = _get(port_entry, "number")
    if isinstance(number, str) and number.strip().isdigit():
        number = int(number.strip())
    protocol = _get(port_entry, "protocol", DEFAULT_PROTOCOL)
    if isinstance(protocol, str) and protocol.strip().upper() in PROTOCOLS:
        protocol = protocol.strip().upper()
    result = {"number": number, "protocol": protocol}
    result.update(_prefix_fields(port_prefixes(port_entry) or [DEFAULT_SOURCE_PREFIX]))
    result["maxRequestAccessDuration"] = canonical_duration(_get(port_entry, "maxRequestAccessDuration", DEFAULT_MAX_REQUEST_ACCESS_DURATION))
    return result


def _port_sort_key(port):
    number = port["number"]
    return (0, number, "") if isinstance(number, int) else (1, 0, str(number))


def normalize_policy_vm(entry):
    """Canonical form of one policy VM entry (REST or SDK shape) for comparison and diff.

    The id is lower-cased, ports are canonical and sorted by number, read-only fields dropped.
    Idempotent: ``normalize_policy_vm(normalize_policy_vm(x)) == normalize_policy_vm(x)``.
    """
    ports = [canonical_port(port) for port in _as_list(_get(entry, "ports"))]
    return {"id": normalize_id(_get(entry, "id", "")), "ports": sorted(ports, key=_port_sort_key)}


def build_policy_vm(vm_id, ports):
    """A REST policy VM entry for ``vm_id`` (kept as given) with already-normalised ``ports``."""
    return {"id": vm_id, "ports": [dict(port) for port in ports]}


# --------------------------------------------------------------------------------------------------
# Resource ids


class ResourceId(namedtuple("ResourceId", "subscription resource_group provider type name children")):
    """A parsed ARM resource id. ``children`` is a tuple of ``(type, name)`` pairs below the
    top-level resource, e.g. ``(("jitNetworkAccessPolicies", "default"),)`` under
    ``Microsoft.Security/locations/westeurope``. ``resource_group`` is ``None`` for
    subscription-level resources."""

    __slots__ = ()

    @property
    def full_type(self):
        """``Microsoft.Compute/virtualMachines``, with child types appended."""
        return "/".join([self.provider, self.type] + [child[0] for child in self.children])

    @property
    def leaf_name(self):
        """Name of the deepest resource (the child's name when there are children)."""
        return self.children[-1][1] if self.children else self.name

    def is_type(self, full_type):
        """Case-insensitive check of :attr:`full_type`."""
        return self.full_type.lower() == full_type.lower()

    def to_id(self):
        """The id string rebuilt from the parts (original case kept)."""
        parts = ["", "subscriptions", self.subscription]
        if self.resource_group is not None:
            parts += ["resourceGroups", self.resource_group]
        parts += ["providers", self.provider, self.type, self.name]
        for child_type, child_name in self.children:
            parts += [child_type, child_name]
        return "/".join(parts)


_RESOURCE_ID_FORM = "/subscriptions/<subscription>/resourceGroups/<group>/providers/<Namespace>/<type>/<name>[/<child type>/<child name>...]"


def parse_resource_id(value):
    """Parse an ARM resource id (keywords matched case-insensitively; names keep their case).

    Raises :class:`JitValidationError` for anything that is not a full resource id.
    """
    if not isinstance(value, str) or not value.strip():
        raise JitValidationError(f"resource id {value!r} is malformed: expected {_RESOURCE_ID_FORM}")
    segments = value.strip().strip("/").split("/")
    if any(not segment for segment in segments) or len(segments) < 2 or segments[0].lower() != "subscriptions":
        raise JitValidationError(f"resource id {value!r} is malformed: expected {_RESOURCE_ID_FORM}")
    subscription = segments[1]
    rest = segments[2:]
    resource_group = None
    if rest and rest[0].lower() == "resourcegroups":
        if len(rest) < 2:
            raise JitValidationError(f"resource id {value!r} is malformed: expected {_RESOURCE_ID_FORM}")
        resource_group = rest[1]
        rest = rest[2:]
    if len(rest) < 4 or rest[0].lower() != "providers" or len(rest) % 2:
        raise JitValidationError(f"resource id {value!r} is malformed: expected {_RESOURCE_ID_FORM}")
    provider, type_, name = rest[1], rest[2], rest[3]
    children = tuple((rest[index], rest[index + 1]) for index in range(4, len(rest), 2))
    return ResourceId(subscription, resource_group, provider, type_, name, children)


def normalize_id(value):
    """Id for case-insensitive comparison: lower-cased, surrounding slashes and spaces trimmed to
    a single leading slash."""
    text = str(value).strip().strip("/").lower()
    return "/" + text if text else ""


def same_id(first, second):
    """True when two resource ids name the same resource (ARM ids are case-insensitive)."""
    return normalize_id(first) == normalize_id(second)


def vm_id(subscription, resource_group, name):
    """``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}``."""
    for label, part in (("subscription", subscription), ("resource_group", resource_group), ("name", name)):
        if not isinstance(part, str) or not part.strip() or "/" in part:
            raise JitValidationError(f"virtual machine {label} {part!r} is not valid: expected a non-empty name without '/'")
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{name}"


def jit_policy_id(subscription, resource_group, location, name=DEFAULT_POLICY_NAME):
    """Id of a JIT policy: ``.../resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}``."""
    for label, part in (("subscription", subscription), ("resource_group", resource_group), ("location", location), ("policy name", name)):
        if not isinstance(part, str) or not part.strip() or "/" in part:
            raise JitValidationError(f"JIT policy {label} {part!r} is not valid: expected a non-empty name without '/'")
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Security/locations/{normalize_location(location)}/jitNetworkAccessPolicies/{name}"
    )


def parse_vm_id(value):
    """Parse and check that ``value`` is a virtual machine id; return the :class:`ResourceId`."""
    parsed = parse_resource_id(value)
    if parsed.resource_group is None or not parsed.is_type("Microsoft.Compute/virtualMachines"):
        raise JitValidationError(
            f"resource id {value!r} is not a virtual machine id:"
            " expected /subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>"
        )
    return parsed


def parse_jit_policy_id(value):
    """Parse a JIT policy id and return a :class:`PolicyKey`."""
    parsed = parse_resource_id(value)
    if parsed.resource_group is None or not parsed.is_type("Microsoft.Security/locations/jitNetworkAccessPolicies"):
        raise JitValidationError(
            f"resource id {value!r} is not a JIT policy id: expected /subscriptions/<subscription>/resourceGroups/<group>"
            "/providers/Microsoft.Security/locations/<region>/jitNetworkAccessPolicies/<name>"
        )
    return PolicyKey(parsed.subscription, parsed.resource_group, normalize_location(parsed.name), parsed.children[0][1])


def vm_id_from_reference(reference, subscription=None):
    """Resolve a module ``virtual_machines`` entry (``{id}`` or ``{name, resource_group}``) to an id.

    ``subscription`` is used with ``name``/``resource_group``; ``None`` values count as unset.
    """
    if not isinstance(reference, dict):
        raise JitValidationError(f"virtual_machines entry {reference!r} is not valid: expected {{id}} or {{name, resource_group}}")
    given_id = reference.get("id")
    name = reference.get("name")
    group = reference.get("resource_group")
    if given_id is not None:
        if name is not None or group is not None:
            raise JitValidationError(
                f"virtual_machines entry {reference!r} sets id together with name/resource_group: set either id, or name and resource_group"
            )
        parse_vm_id(given_id)
        return given_id.strip()
    if name is None or group is None:
        raise JitValidationError(f"virtual_machines entry {reference!r} is incomplete: set id, or both name and resource_group")
    if not subscription:
        raise JitValidationError(f"virtual_machines entry {reference!r} needs a subscription: set subscription_id, or give the VM's id")
    return vm_id(subscription, group, name)


def normalize_location(value):
    """``West Europe`` -> ``westeurope`` (ARM region names are lower-case without spaces)."""
    return str(value).replace(" ", "").lower()


# --------------------------------------------------------------------------------------------------
# Grouping VMs into policies

PolicyKey = namedtuple("PolicyKey", "subscription resource_group location policy_name")
PolicyKey.__doc__ = """Identifies one JIT policy: it lives in the VM's resource group and region."""


def policy_key_id(key):
    """The JIT policy id of a :class:`PolicyKey`."""
    return jit_policy_id(key.subscription, key.resource_group, key.location, key.policy_name)


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
    return normalize_id(_get(entry, "id", ""))


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
            raise JitValidationError(f"virtual machine {_get(entry, 'id')!r} is listed more than once: each VM may appear once per policy")
        wanted[key] = entry
    merged = []
    placed = set()
    for entry in existing:
        key = _entry_id(entry)
        if key in wanted:
            if key not in placed:
                merged.append(wanted[key])
                placed.add(key)
        elif not purge:
            merged.append(entry)
    merged.extend(entry for key, entry in wanted.items() if key not in placed)
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


def policy_vm_entries(policy):
    """The VM entries of a policy resource (REST ``properties.virtualMachines`` or SDK
    ``virtual_machines``); ``[]`` for ``None`` (policy absent)."""
    if not policy:
        return []
    return list(_as_list(_get(_props(policy), "virtualMachines")))


def find_policy_vm(policy_or_entries, vm_id_value):
    """The entry for ``vm_id_value`` (case-insensitive) in a policy or a list of entries, or ``None``."""
    entries = policy_or_entries if isinstance(policy_or_entries, list) else policy_vm_entries(policy_or_entries)
    key = normalize_id(vm_id_value)
    for entry in entries:
        if _entry_id(entry) == key:
            return entry
    return None


# --------------------------------------------------------------------------------------------------
# Timestamps

_TIMESTAMP_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?\s*(?P<zone>Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_azure_datetime(value):
    """Parse an Azure timestamp into an aware UTC ``datetime``.

    Accepts ``datetime`` objects (naive ones are taken as UTC) and strings such as
    ``2026-11-21T10:00:00Z``, ``2026-11-21T10:00:00.1234567Z`` (any number of fractional digits,
    truncated to microseconds), ``+01:00``/``+0100`` offsets, or no zone (UTC).
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    match = _TIMESTAMP_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise JitValidationError(f"timestamp {value!r} is not valid: expected ISO 8601 such as 2026-11-21T10:00:00Z")
    clock = match.group("time")
    if len(clock) == 5:
        clock += ":00"
    fraction = (match.group("fraction") or "0")[:6].ljust(6, "0")
    try:
        parsed = datetime.strptime(f"{match.group('date')}T{clock}.{fraction}", "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        raise JitValidationError(f"timestamp {value!r} is not valid: expected ISO 8601 such as 2026-11-21T10:00:00Z") from None
    zone = (match.group("zone") or "Z").upper()
    offset = timedelta(0)
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    return (parsed - offset).replace(tzinfo=_UTC)


def format_azure_datetime(value):
    """``2026-11-21T10:00:00Z`` (UTC, whole seconds; microseconds kept when present)."""
    value = parse_azure_datetime(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


# --------------------------------------------------------------------------------------------------
# Access requests (jit_request)

ActiveRequest = namedtuple("ActiveRequest", "vm_id port sources start_time end_time status requestor justification")
ActiveRequest.__doc__ = """The request currently effective for one VM port. ``vm_id`` is lower-case,
``sources`` a sorted tuple of prefixes (empty when the service recorded none), times aware UTC."""


def active_requests(policy, now):
    """Currently effective requests of a policy, keyed by ``(vm id lower-case, port number)``.

    A port request is effective when its status is ``Initiated`` and its ``endTimeUtc`` is after
    ``now`` (an aware datetime). When several qualify, the latest ``startTimeUtc`` wins (later in
    the list on a tie). Requests with unparseable times are ignored.
    """
    now = parse_azure_datetime(now)
    found = {}
    for request in _as_list(_get(_props(policy), "requests")):
        try:
            start = parse_azure_datetime(_get(request, "startTimeUtc"))
        except JitValidationError:
            continue
        for vm in _as_list(_get(request, "virtualMachines")):
            vm_key = _entry_id(vm)
            for port in _as_list(_get(vm, "ports")):
                status = str(_get(port, "status", ""))
                try:
                    end = parse_azure_datetime(_get(port, "endTimeUtc"))
                    number = validate_port_number(_get(port, "number"))
                except JitValidationError:
                    continue
                if status.lower() != REQUEST_STATUS_INITIATED.lower() or end <= now:
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
                    requestor=_get(request, "requestor"),
                    justification=_get(request, "justification"),
                )
    return found


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
    return set(active.sources) == set(sources)


def is_any_source(value):
    """True for sources meaning "anywhere": ``*``, ``0.0.0.0/0``, ``Internet``, ``Any``."""
    return isinstance(value, str) and value.strip().lower() in ANY_SOURCE_VALUES


def normalize_request_sources(sources, allow_any_source=False, name="source_address_prefixes"):
    """Validate request sources; return a sorted tuple, or ``None`` when none are given.

    IPv6 is refused (the service rejects it); any-source values are refused unless
    ``allow_any_source`` and then become ``*``.
    """
    items = _as_list(sources)
    if not items:
        return None
    result = set()
    for item in items:
        if is_any_source(item):
            if not allow_any_source:
                raise JitValidationError(
                    f"{name} entry {item!r} opens the port to any source: give specific IPv4 addresses or CIDRs, or set allow_any_source: true"
                )
            result.add("*")
            continue
        result.add(normalize_source_prefix(item, name=name))
    if "*" in result:
        return ("*",)
    return tuple(sorted(result, key=prefix_sort_key))


def _prefix_within(source, allowed):
    """True when ``source`` (canonical) lies inside one of ``allowed`` (policy prefixes)."""
    if "*" in allowed:
        return True
    if source == "*":
        return False
    network = ipaddress.ip_network(source, strict=False)
    for prefix in allowed:
        try:
            container = ipaddress.ip_network(prefix, strict=False)
        except ValueError:  # a service tag or other text: a concrete source cannot be shown inside it
            continue
        if container.version == network.version and network.subnet_of(container):
            return True
    return False


def build_initiate_ports(policy_vm, duration=DEFAULT_REQUEST_DURATION, *, ports=None, sources=None, allow_any_source=False, vm_label=None, now=None):
    """Validate a request against a VM's policy entry and return the initiate ``ports`` list.

    * ``ports``: port numbers to open (default every port of the VM's policy entry); each must be
      in the entry (the message lists the allowed ports).
    * ``duration``: any :func:`parse_duration` form, at least 1 minute and at most the port's
      ``maxRequestAccessDuration`` (the message says the maximum).
    * ``sources``: prefixes (see :func:`normalize_request_sources`); each must lie within the
      port's allowed prefixes (policy ``*`` allows anything). ``None`` omits the prefix so the
      service uses the caller's address.
    * ``now``: the time ``endTimeUtc`` (now + duration) counts from; default the current UTC time.

    Returns ``[{"number", "endTimeUtc", ["allowedSourceAddressPrefix"]}]``: exactly the fields of
    the 2020-01-01 ``JitNetworkAccessPolicyInitiatePort`` (which has no duration and a single
    source prefix per port; more than one source is refused here, before any write).
    """
    label = vm_label or _get(policy_vm, "id", "?")
    seconds = parse_duration(duration, name="duration")
    policy_ports = OrderedDict()
    for port in sorted((canonical_port(item) for item in _as_list(_get(policy_vm, "ports"))), key=_port_sort_key):
        policy_ports[port["number"]] = port
    allowed_text = ", ".join(str(number) for number in policy_ports) or "none"
    wanted = list(policy_ports) if ports is None else [validate_port_number(item, name="port") for item in _as_list(ports)]
    if not wanted:
        raise JitValidationError(f"no ports to open on VM {label!r}: its JIT policy allows ports {allowed_text}")
    request_sources = normalize_request_sources(sources, allow_any_source=allow_any_source)
    if request_sources and len(request_sources) > 1:
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
        check_duration_bounds(seconds, name=f"duration for port {number} on VM {label!r}", minimum=MIN_REQUEST_SECONDS, maximum=maximum, shown=duration)
        allowed = port_prefixes(policy_port)
        for source in request_sources or ():
            if not _prefix_within(source, allowed):
                raise JitValidationError(
                    f"source {source!r} is not within the allowed source prefixes of port {number} on VM {label!r}: allowed {', '.join(allowed)}"
                )
        entry = {"number": number, "endTimeUtc": format_azure_datetime(start + timedelta(seconds=seconds))}
        if request_sources:
            entry["allowedSourceAddressPrefix"] = request_sources[0]
        result.append(entry)
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
