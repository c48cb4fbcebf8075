# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The leaf every other layer builds on: ARM resource ids, the validation error, REST field
helpers, retry settings and error descriptions.

It imports nothing of the collection and no SDK (exceptions are recognised by duck typing), so it
can be unit-tested without Azure packages and ``ansible-test sanity`` import checks pass.
"""

from __future__ import annotations

import functools
import re
from collections import namedtuple
from datetime import datetime, timedelta, timezone

_UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; module_utils may run on older targets

# azure-core's RetryPolicy retries 408/429/500/502/503/504 and sleeps for Retry-After when the
# service sends it; these bound the total so a throttling storm fails in minutes, not hours.
RETRY_SETTINGS = {
    "retry_total": 8,
    "retry_backoff_factor": 0.8,
    "retry_backoff_max": 60,
    "connection_timeout": 30,
    "read_timeout": 120,
}

# Long-running network operations: poll at this interval unless the service sends Retry-After.
LRO_POLLING_INTERVAL = 2

REQUEST_ID_HEADERS = ("x-ms-request-id", "x-ms-correlation-request-id", "client-request-id")


def _response_headers(exc):
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers or {}


def request_id_of(exc):
    """Return the ARM request id carried by an SDK exception's response, or None."""
    headers = _response_headers(exc)
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def error_details(exc):
    """Return ``{status, code, message, request_id}`` for any Azure SDK / identity exception."""
    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if not message:
        message = getattr(exc, "message", None) or str(exc)
    # azure-identity wraps AADSTS errors in ClientAuthenticationError whose text carries the code.
    if code is None and "AADSTS" in message:
        start = message.index("AADSTS")
        end = start + 6
        while end < len(message) and message[end].isdigit():
            end += 1
        code = message[start:end]
    if code is None:
        code = type(exc).__name__
    return {
        "status": status,
        "code": code,
        "message": " ".join(message.split()),
        "request_id": request_id_of(exc),
    }


def describe_error(exc, action=None):
    """One line for ``fail_json(msg=...)``: what failed, the ARM code, message and request id."""
    details = error_details(exc)
    parts = []
    if action:
        parts.append("%s failed:" % action)
    # A long-running operation that ends Failed is reported by a 200 status poll: no HTTP code then.
    if details["status"] and not 200 <= details["status"] < 300:
        parts.append("HTTP %s" % details["status"])
    parts.append("%s: %s" % (details["code"], details["message"]))
    text = " ".join(parts)
    if _looks_like_tls_failure(details["message"]):
        text += " (TLS verification failed: trust the endpoint's CA with REQUESTS_CA_BUNDLE; verification cannot be turned off)"
    if details["request_id"]:
        text += " (request id %s)" % details["request_id"]
    return text


def _looks_like_tls_failure(message):
    lowered = message.lower()
    return "certificate_verify_failed" in lowered or "certificate verify failed" in lowered


# --------------------------------------------------------------------------------------------------
# The validation error


class JitValidationError(ValueError):
    """A user input (or a value read back from Azure) is not valid.

    The message names the offending value and the allowed range or choices.
    """


MAX_NUMBER_DIGITS = 15
"""Longest run of digits read as one number: far beyond any port, priority or duration in seconds,
and short enough that a pasted megabyte of digits is refused before Python converts it."""
_WHOLE_NUMBER_RE = re.compile(r"[0-9]{1,%d}" % MAX_NUMBER_DIGITS, re.ASCII)


def whole_number(value, name, allowed):
    """The one strict reader of whole numbers (ports, durations in seconds, counts).

    Accepts an ``int`` (not a ``bool``) or a string of ASCII digits, surrounding spaces trimmed.
    Refuses signs, decimal points, exponents, ``_`` separators, Unicode digits (``٢٢``, ``２２``,
    ``²``) and more than :data:`MAX_NUMBER_DIGITS` digits with a :class:`JitValidationError` that
    names ``name``, the value and ``allowed``. Range checks are the caller's.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WHOLE_NUMBER_RE.fullmatch(value.strip(" \t")):
        return int(value.strip(" \t"))
    raise JitValidationError(f"{name} {value!r} is not a whole number: allowed {allowed}")


SCRUBBED = "********"


def scrub(value, secrets):
    """``value`` (text, or lists, tuples and dicts of it) with every occurrence of each of
    ``secrets`` replaced by :data:`SCRUBBED`; dict keys are kept. Whatever the text came from (an
    exception, a server's answer), a secret the run holds cannot reach the output through it. A
    container without a secret anywhere inside is returned as it is, not copied."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, SCRUBBED)
        return value
    # Only what holds a secret is copied: a fleet's facts are tens of megabytes, and a full copy
    # beside the original would double the module's peak memory for nothing.
    if isinstance(value, dict):
        copied = None
        for key, item in value.items():
            cleaned = scrub(item, secrets)
            if cleaned is not item:
                copied = dict(value) if copied is None else copied
                copied[key] = cleaned
        return value if copied is None else copied
    if isinstance(value, (list, tuple)):
        copied = None
        for index, item in enumerate(value):
            cleaned = scrub(item, secrets)
            if cleaned is not item:
                copied = list(value) if copied is None else copied
                copied[index] = cleaned
        return value if copied is None else type(value)(copied)
    return value


# --------------------------------------------------------------------------------------------------
# REST fields (camelCase as ARM returns them; the SDK's ``as_dict()`` spelling is read too)


@functools.lru_cache(maxsize=1024)
def snake_case(name):
    """``allowedSourceAddressPrefix`` -> ``allowed_source_address_prefix`` (remembered: the same few
    field names are read millions of times on a large fleet)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def rest_field(data, camel, default=None):
    """Read ``camel`` (REST spelling) or its snake_case twin (SDK ``as_dict()``) from a dict.

    ``None`` values count as absent.
    """
    value = data.get(camel)
    if value is None:
        value = data.get(snake_case(camel))
    return default if value is None else value


def properties_of(resource):
    """The ``properties`` of a REST resource, or the resource itself when already flattened (SDK)."""
    props = resource.get("properties")
    return props if isinstance(props, dict) else resource


def as_list(value):
    """``None`` -> ``[]``, a list or tuple -> a list, anything else -> ``[value]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


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


DEFAULT_POLICY_NAME = "default"
"""The JIT policy name Defender for Cloud's portal and this collection use."""


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


AUTO = "auto"
BASTION_TYPE = "Microsoft.Network/bastionHosts"
_OPTION_FORMS = (
    "expected 'auto', a Bastion host id (/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.Network/bastionHosts/<name>) or {name, resource_group}"
)


def bastion_reference(value, subscription=None):
    """The ``bastion`` option of jit_policy and jit_request -> ``None``, :data:`AUTO` or a Bastion
    host id. A mapping takes ``id``, or ``name`` and ``resource_group`` (in ``subscription``)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str) and value.strip().startswith("/"):
        return _bastion_id(value.strip())
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"id", "name", "resource_group"})
        given = {key: value.get(key) for key in ("id", "name", "resource_group") if value.get(key) is not None}
        if unknown:
            raise JitValidationError(f"bastion has unknown key(s) {', '.join(map(str, unknown))}: {_OPTION_FORMS}")
        if set(given) == {"id"}:
            return _bastion_id(str(given["id"]).strip())
        if set(given) == {"name", "resource_group"} and all(isinstance(v, str) and v.strip() and "/" not in v for v in given.values()):
            if not subscription:
                raise JitValidationError("bastion given by name needs a subscription: set subscription_id, or give the Bastion host's id")
            return f"/subscriptions/{subscription}/resourceGroups/{given['resource_group'].strip()}/providers/{BASTION_TYPE}/{given['name'].strip()}"
    raise JitValidationError(f"bastion {value!r} is not valid: {_OPTION_FORMS}")


def _bastion_id(value):
    parsed = parse_resource_id(value)
    if parsed.resource_group is None or not parsed.is_type(BASTION_TYPE):
        raise JitValidationError(f"bastion {value!r} is not a Bastion host id: {_OPTION_FORMS}")
    return value


def normalize_location(value):
    """``West Europe`` -> ``westeurope`` (ARM region names are lower-case without spaces)."""
    return str(value).replace(" ", "").lower()


PolicyKey = namedtuple("PolicyKey", "subscription resource_group location policy_name")
PolicyKey.__doc__ = """Identifies one JIT policy: it lives in the VM's resource group and region."""


def policy_key_id(key):
    """The JIT policy id of a :class:`PolicyKey`."""
    return jit_policy_id(key.subscription, key.resource_group, key.location, key.policy_name)


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
