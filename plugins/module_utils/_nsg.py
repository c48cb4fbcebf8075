# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure network security group (NSG) logic: rule model, inbound evaluation, JIT-rule recognition.

No SDK imports. Rules come from REST JSON (camelCase, fields under ``properties``) or from the
Azure SDK's ``as_dict()`` (snake_case, flattened); both become a :class:`SecurityRule`.

Evaluation model (inbound, as Azure documents it):

* One NSG: rules of the ``Inbound`` direction are tried in ascending priority (lower number
  first); the first rule matching source, destination, destination port and protocol decides.
  Azure's default rules (``AllowVnetInBound`` 65000, ``AllowAzureLoadBalancerInBound`` 65001,
  ``DenyAllInBound`` 65500) close the list.
* A path: the subnet NSG is evaluated, then the NIC NSG; traffic passes only if both allow. A
  level without an NSG allows.
* Source port ranges are assumed to be arbitrary (clients use ephemeral ports): a rule whose
  source ports are not ``*`` (or 0-65535) is treated as not matching.

Addresses and service tags (IPv4 only; IPv6 prefixes never match):

* ``*`` (also ``Any``) matches every address.
* ``VirtualNetwork`` matches the VNet address spaces (and peered / connected ranges) passed in an
  :class:`AddressContext`. As a *destination* it always matches: the destination evaluated here
  is a VM's private IP, which is inside its VNet by definition.
* ``AzureLoadBalancer`` matches ``168.63.129.16``.
* ``Internet`` matches public addresses outside the VirtualNetwork ranges: every IPv4 address
  except the private, shared, loopback, link-local, multicast and reserved blocks
  (:data:`NON_INTERNET_NETWORKS`), the VirtualNetwork ranges and 168.63.129.16.
* Other service tags (``AzureCloud``, ``Storage``...) have ranges unknown here: they never match a
  concrete address and count as "some Internet sources" for the symbolic Internet source.

The symbolic source :data:`INTERNET_SOURCE` asks "can the Internet reach this port?":

* A rule *covers the Internet* when its source prefixes together contain every Internet address
  (``*``, ``Any``, ``Internet``, ``0.0.0.0/0``, or CIDRs adding up to all public space). The first
  such matching rule decides ``allowed``: the answer for an arbitrary Internet source.
* A matching rule whose sources hold only *some* Internet addresses (``203.0.113.0/24``, unknown
  tags) does not decide. When it allows, its public prefixes are collected in
  ``admitted_prefixes`` (unless an earlier partial deny already holds them entirely): the port is
  then *partially* exposed even though ``allowed`` is False. Rules whose sources hold no Internet
  address (private CIDRs, ``VirtualNetwork``, ``AzureLoadBalancer``) are skipped.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from collections import namedtuple
from dataclasses import dataclass, field

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError, normalize_id, properties_of, rest_field

INBOUND = "Inbound"
OUTBOUND = "Outbound"
INTERNET_SOURCE = "Internet"
"""Symbolic source for :func:`evaluate_inbound`: any address on the Internet."""

AZURE_LOAD_BALANCER_ADDRESS = "168.63.129.16"
PRIORITY_MIN = 100
PRIORITY_MAX = 4096
PORT_MIN = 0
PORT_MAX = 65535

LEVEL_SUBNET = "subnet"
LEVEL_NIC = "nic"

NON_INTERNET_NETWORKS = tuple(
    ipaddress.ip_network(prefix)
    for prefix in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
"""IPv4 blocks that are never the ``Internet`` tag (RFC 1918, shared, loopback, link-local, multicast, reserved)."""

_ANY_TOKENS = ("*", "any")
_TAG_INTERNET = "internet"
_TAG_VNET = "virtualnetwork"
_TAG_ALB = "azureloadbalancer"
_ALL_NETWORK = ipaddress.ip_network("0.0.0.0/0")
_PROTOCOLS = ("tcp", "udp", "icmp", "esp", "ah")


# --------------------------------------------------------------------------------------------------
# Port ranges

_PORT_RANGE_FORMS = "allowed a port 0-65535, a range such as 1000-2000, or '*'"


def parse_port_range(value):
    """``"22" -> (22, 22)``, ``"1000-2000" -> (1000, 2000)``, ``"*" -> (0, 65535)``; ints accepted."""
    if isinstance(value, bool):
        raise JitValidationError(f"port range {value!r} is not valid: {_PORT_RANGE_FORMS}")
    text = str(value).strip()
    if text.lower() in _ANY_TOKENS:
        return (PORT_MIN, PORT_MAX)
    match = re.match(r"^(\d{1,5})\s*(?:-\s*(\d{1,5}))?$", text, re.ASCII)
    if not match:
        raise JitValidationError(f"port range {value!r} is not valid: {_PORT_RANGE_FORMS}")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if not PORT_MIN <= low <= high <= PORT_MAX:
        raise JitValidationError(f"port range {value!r} is not valid: {_PORT_RANGE_FORMS}, low end first")
    return (low, high)


@functools.lru_cache(maxsize=4096)
def _parse_port_tuple(items):
    """Big NSGs repeat the same few port lists thousands of times: each is parsed once."""
    return tuple(parse_port_range(item) for item in items)


def parse_port_ranges(values):
    """Parse one range or a list of them (``["22", "3389", "5985-5986"]``) into a tuple of pairs."""
    items = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    try:
        return _parse_port_tuple(items)
    except TypeError:  # unhashable items: parsed (and refused) without the cache
        return tuple(parse_port_range(item) for item in items)


def ports_in_ranges(port, ranges):
    """True when ``port`` lies in one of the ``(low, high)`` pairs."""
    return any(low <= port <= high for low, high in ranges)


def ranges_overlap(first, second):
    """True when two lists of ``(low, high)`` pairs share at least one port."""
    return any(a_low <= b_high and b_low <= a_high for a_low, a_high in first for b_low, b_high in second)


# --------------------------------------------------------------------------------------------------
# Rule model


def _strings(data, single, plural):
    values = list(rest_field(data, plural) or [])
    one = rest_field(data, single)
    if one is not None and one != "":
        values.append(one)
    return tuple(str(value) for value in values)


def _asg_ids(data, camel):
    return tuple(str(item.get("id", "")).lower() if isinstance(item, dict) else str(item).lower() for item in rest_field(data, camel) or [])


@dataclass(frozen=True)
class SecurityRule:
    """One NSG security rule. Build it with :meth:`from_azure` from REST or SDK data.

    Prefix and port fields are tuples of strings as Azure holds them (singular and plural fields
    merged). ``is_default`` marks Azure's default rules.
    """

    name: str
    priority: int
    direction: str = INBOUND
    access: str = "Allow"
    protocol: str = "*"
    source_address_prefixes: tuple = ("*",)
    source_port_ranges: tuple = ("*",)
    destination_address_prefixes: tuple = ("*",)
    destination_port_ranges: tuple = ("*",)
    description: str = ""
    source_application_security_groups: tuple = ()
    destination_application_security_groups: tuple = ()
    is_default: bool = False
    _destination_ranges: tuple = field(init=False, repr=False, compare=False)
    _source_ranges: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        try:
            object.__setattr__(self, "_destination_ranges", parse_port_ranges(self.destination_port_ranges))
            object.__setattr__(self, "_source_ranges", parse_port_ranges(self.source_port_ranges))
        except JitValidationError as exc:
            raise JitValidationError(f"security rule {self.name!r}: {exc}") from None

    @classmethod
    def from_azure(cls, data, is_default=False):
        """Build from REST JSON (``{"name", "properties": {...}}``, camelCase) or an SDK
        ``as_dict()`` (snake_case, flattened). Passing a :class:`SecurityRule` returns it."""
        if isinstance(data, cls):
            return data
        props = data.get("properties") if isinstance(data.get("properties"), dict) else data
        priority = rest_field(props, "priority")
        try:
            priority = int(priority)
        except (TypeError, ValueError):
            raise JitValidationError(f"security rule {data.get('name')!r} has priority {priority!r}: expected an integer") from None
        return cls(
            name=str(data.get("name") or props.get("name") or ""),
            priority=priority,
            direction=str(rest_field(props, "direction", INBOUND)),
            access=str(rest_field(props, "access", "Allow")),
            protocol=str(rest_field(props, "protocol", "*")),
            source_address_prefixes=_strings(props, "sourceAddressPrefix", "sourceAddressPrefixes"),
            source_port_ranges=_strings(props, "sourcePortRange", "sourcePortRanges") or ("*",),
            destination_address_prefixes=_strings(props, "destinationAddressPrefix", "destinationAddressPrefixes"),
            destination_port_ranges=_strings(props, "destinationPortRange", "destinationPortRanges") or ("*",),
            description=str(rest_field(props, "description", "")),
            source_application_security_groups=_asg_ids(props, "sourceApplicationSecurityGroups"),
            destination_application_security_groups=_asg_ids(props, "destinationApplicationSecurityGroups"),
            is_default=is_default,
        )

    @property
    def is_inbound(self):
        return self.direction.lower() == INBOUND.lower()

    @property
    def is_allow(self):
        return self.access.lower() == "allow"

    @property
    def destination_ranges(self):
        """Destination ports as ``(low, high)`` pairs."""
        return self._destination_ranges

    def covers_port(self, port):
        """True when the destination port ranges include ``port``."""
        return ports_in_ranges(port, self._destination_ranges)

    def covers_protocol(self, protocol):
        """True when the rule's protocol is ``*``/``Any`` or equals ``protocol`` (case-insensitive)."""
        return self.protocol.lower() in _ANY_TOKENS or self.protocol.lower() == protocol.lower()

    def any_source_port(self):
        """True when the source port ranges include every port (the usual ``*``)."""
        return _covers_all_ports(self._source_ranges)

    def as_dict(self):
        """Compact dict for module output."""
        return {
            "name": self.name,
            "priority": self.priority,
            "direction": self.direction,
            "access": self.access,
            "protocol": self.protocol,
            "source_address_prefixes": list(self.source_address_prefixes),
            "destination_address_prefixes": list(self.destination_address_prefixes),
            "destination_port_ranges": list(self.destination_port_ranges),
            "description": self.description,
        }


def _covers_all_ports(ranges):
    position = PORT_MIN
    for low, high in sorted(ranges):
        if low > position:
            return False
        position = max(position, high + 1)
    return position > PORT_MAX


def _default(name, priority, direction, access, *, source, destination):
    return SecurityRule(
        name=name,
        priority=priority,
        direction=direction,
        access=access,
        source_address_prefixes=(source,),
        destination_address_prefixes=(destination,),
        is_default=True,
    )


DEFAULT_INBOUND_RULES = (
    _default("AllowVnetInBound", 65000, INBOUND, "Allow", source="VirtualNetwork", destination="VirtualNetwork"),
    _default("AllowAzureLoadBalancerInBound", 65001, INBOUND, "Allow", source="AzureLoadBalancer", destination="*"),
    _default("DenyAllInBound", 65500, INBOUND, "Deny", source="*", destination="*"),
)
"""Azure's default inbound rules, applied after every custom rule."""

DEFAULT_OUTBOUND_RULES = (
    _default("AllowVnetOutBound", 65000, OUTBOUND, "Allow", source="VirtualNetwork", destination="VirtualNetwork"),
    _default("AllowInternetOutBound", 65001, OUTBOUND, "Allow", source="*", destination="Internet"),
    _default("DenyAllOutBound", 65500, OUTBOUND, "Deny", source="*", destination="*"),
)
"""Azure's default outbound rules."""


def rules_from_nsg(nsg):
    """All rules of an NSG resource (REST or SDK shape): its custom ``securityRules`` plus its
    ``defaultSecurityRules`` (Azure's constants when the resource does not list them)."""
    props = properties_of(nsg)
    custom = [SecurityRule.from_azure(item) for item in rest_field(props, "securityRules") or []]
    defaults = [SecurityRule.from_azure(item, is_default=True) for item in rest_field(props, "defaultSecurityRules") or []]
    return tuple(custom + (defaults or list(DEFAULT_INBOUND_RULES + DEFAULT_OUTBOUND_RULES)))


def _as_rules(rules):
    return [SecurityRule.from_azure(rule) for rule in rules]


# --------------------------------------------------------------------------------------------------
# Addresses


def _subtract(networks, removed):
    """IPv4 networks minus ``removed`` networks, as a list of networks."""
    result = list(networks)
    for cut in removed:
        next_result = []
        for network in result:
            if network.subnet_of(cut):
                continue
            if cut.subnet_of(network):
                next_result.extend(network.address_exclude(cut))
            else:
                next_result.append(network)
        result = next_result
    return list(ipaddress.collapse_addresses(result))


def _ipv4_network(token):
    """An IPv4 network for a CIDR or address token, or ``None`` (tags, IPv6, garbage)."""
    try:
        network = ipaddress.ip_network(token.strip(), strict=False)
    except ValueError:
        return None
    return network if network.version == 4 else None


class AddressContext:
    """What the service tags mean for one VM: ``virtual_network`` are the VNet address spaces,
    ``peered`` further ranges reachable as ``VirtualNetwork`` (peerings, VPN / ExpressRoute)."""

    def __init__(self, virtual_network=(), peered=()):
        networks = []
        for token in list(virtual_network) + list(peered):
            network = _ipv4_network(str(token))
            if network is None:
                raise JitValidationError(f"virtual network prefix {token!r} is not valid: expected an IPv4 CIDR such as 10.0.0.0/16")
            networks.append(network)
        self.virtual_network = tuple(ipaddress.collapse_addresses(networks))
        self._load_balancer = ipaddress.ip_network(AZURE_LOAD_BALANCER_ADDRESS + "/32")
        self.internet_networks = tuple(_subtract([_ALL_NETWORK], list(NON_INTERNET_NETWORKS) + list(self.virtual_network) + [self._load_balancer]))

    def in_virtual_network(self, address):
        return any(address in network for network in self.virtual_network)

    def is_internet(self, address):
        """True for a public IPv4 address outside the VirtualNetwork ranges."""
        return address.version == 4 and any(address in network for network in self.internet_networks)

    def matches(self, token, address, destination=False):
        """True when prefix/tag ``token`` includes the concrete ``address``."""
        text = token.strip().lower()
        if text in _ANY_TOKENS:
            return True
        if text == _TAG_INTERNET:
            return self.is_internet(address)
        if text == _TAG_VNET:
            return destination or self.in_virtual_network(address)
        if text == _TAG_ALB:
            return str(address) == AZURE_LOAD_BALANCER_ADDRESS
        network = _ipv4_network(token)
        return network is not None and address.version == 4 and address in network

    def internet_coverage(self, tokens):
        """How much of the Internet a rule's source tokens hold together.

        Returns ``("all", ())``, ``("some", admitted_tokens)`` or ``("none", ())``.
        """
        networks = []
        some = []
        for token in tokens:
            text = token.strip().lower()
            if text in _ANY_TOKENS or text == _TAG_INTERNET:
                return ("all", ())
            if text in (_TAG_VNET, _TAG_ALB):
                continue
            network = _ipv4_network(token)
            if network is None:
                if ":" not in text:  # an unknown service tag: some public (Azure) ranges
                    some.append(token)
                continue
            if any(network.overlaps(block) for block in self.internet_networks):
                networks.append(network)
                some.append(token)
        if networks:
            collapsed = list(ipaddress.collapse_addresses(networks))
            if all(any(block.subnet_of(network) for network in collapsed) for block in self.internet_networks):
                return ("all", ())
        return ("some", tuple(some)) if some else ("none", ())


def _as_context(context):
    if context is None:
        return AddressContext()
    if isinstance(context, AddressContext):
        return context
    return AddressContext(virtual_network=context)


def _parse_address(value, name):
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise JitValidationError(f"{name} {value!r} is not valid: expected an IPv4 address") from None
    if address.version != 4:
        raise JitValidationError(f"{name} {value!r} is IPv6: expected an IPv4 address")
    return address


def is_internet_source(value):
    """True when ``value`` is the symbolic :data:`INTERNET_SOURCE` (case-insensitive)."""
    return isinstance(value, str) and value.strip().lower() == _TAG_INTERNET


# --------------------------------------------------------------------------------------------------
# Evaluation


class _Exposure:
    """``partial`` and ``exposed`` of a verdict with ``allowed`` and ``admitted_prefixes``."""

    @property
    def partial(self):
        """True when not allowed in general but some Internet prefixes are admitted."""
        return not self.allowed and bool(self.admitted_prefixes)

    @property
    def exposed(self):
        return self.allowed or self.partial


@dataclass(frozen=True)
class NsgDecision(_Exposure):
    """The verdict of one NSG (one level of the path).

    ``allowed``: whether the source gets in (for :data:`INTERNET_SOURCE`, an arbitrary Internet
    source). ``rule_name``/``rule_priority``: the deciding rule (``None`` when no rule matched or
    no NSG exists at this level: ``present`` is then False and ``allowed`` True).
    ``admitted_prefixes``/``admitting_rules``: Internet prefixes admitted by rules that hold only
    part of the Internet, and those rules' names (symbolic source, denied case only).
    """

    allowed: bool
    rule_name: str | None = None
    rule_priority: int | None = None
    rule_access: str | None = None
    level: str | None = None
    nsg: str | None = None
    present: bool = True
    admitted_prefixes: tuple = ()
    admitting_rules: tuple = ()

    def as_dict(self):
        return {
            "allowed": self.allowed,
            "partial": self.partial,
            "level": self.level,
            "nsg": self.nsg,
            "present": self.present,
            "rule": self.rule_name,
            "priority": self.rule_priority,
            "access": self.rule_access,
            "admitted_prefixes": list(self.admitted_prefixes),
            "admitting_rules": list(self.admitting_rules),
        }


def _check_query(port, protocol):
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise JitValidationError(f"port {port!r} is out of range: allowed {PORT_MIN}-{PORT_MAX}")
    if not isinstance(protocol, str) or protocol.strip().lower() not in _PROTOCOLS:
        raise JitValidationError(f"protocol {protocol!r} is not valid: allowed Tcp, Udp, Icmp, Esp, Ah")


def ordered_inbound_rules(rules, include_defaults=True):
    """Inbound rules in evaluation order (priority, then name), Azure's defaults appended when
    ``include_defaults`` and the input does not already hold default rules."""
    inbound = [rule for rule in _as_rules(rules) if rule.is_inbound]
    if include_defaults and not any(rule.is_default for rule in inbound):
        inbound.extend(DEFAULT_INBOUND_RULES)
    return sorted(inbound, key=lambda rule: (rule.priority, rule.name))


def _destination_matches(rule, address, context, destination_asgs):
    if rule.destination_application_security_groups and set(rule.destination_application_security_groups) & destination_asgs:
        return True
    return any(context.matches(token, address, destination=True) for token in rule.destination_address_prefixes)


def _networks_hold(denied, token):
    network = _ipv4_network(token)
    return network is not None and any(network.subnet_of(cut) for cut in denied)


def evaluate_inbound(rules, source, destination, port, protocol="Tcp", *, context=None, destination_asgs=(), include_defaults=True, level=None, nsg=None):
    """Evaluate one NSG's inbound rules for ``source`` -> ``destination``:``port``/``protocol``.

    ``rules``: :class:`SecurityRule` objects or REST/SDK dicts (order irrelevant).
    ``source``: an IPv4 address, or :data:`INTERNET_SOURCE` (see the module documentation).
    ``destination``: the VM's private IPv4 address. ``context``: an :class:`AddressContext` or a
    list of VNet prefixes. ``destination_asgs``: application security group ids of the NIC.
    ``level``/``nsg`` are copied into the :class:`NsgDecision`.
    """
    _check_query(port, protocol)
    context = _as_context(context)
    target = _parse_address(destination, "destination")
    symbolic = is_internet_source(source)
    origin = None if symbolic else _parse_address(source, "source")
    asgs = {str(item).lower() for item in destination_asgs}
    admitted, admitting, denied = [], [], []
    for rule in ordered_inbound_rules(rules, include_defaults):
        if not (rule.covers_protocol(protocol) and rule.covers_port(port)):
            continue
        if not rule.is_allow and not rule.any_source_port():
            continue  # a deny of some source ports only: a client picks its own source port and passes
        # (an allow of some source ports matches: a client can pick one of them)
        if not _destination_matches(rule, target, context, asgs):
            continue
        if not symbolic:
            if any(context.matches(token, origin) for token in rule.source_address_prefixes):
                return NsgDecision(rule.is_allow, rule.name, rule.priority, rule.access, level, nsg)
            continue
        coverage, tokens = context.internet_coverage(rule.source_address_prefixes)
        if coverage == "all":
            if rule.is_allow:
                return NsgDecision(True, rule.name, rule.priority, rule.access, level, nsg)
            return NsgDecision(False, rule.name, rule.priority, rule.access, level, nsg, True, tuple(admitted), tuple(admitting))
        if coverage == "some":
            if rule.is_allow:
                fresh = [token for token in tokens if not _networks_hold(denied, token) and token not in admitted]
                if fresh:
                    admitted.extend(fresh)
                    admitting.append(rule.name)
            else:
                denied.extend(network for network in (_ipv4_network(token) for token in tokens) if network is not None)
    return NsgDecision(False, None, None, None, level, nsg, True, tuple(admitted), tuple(admitting))


@dataclass(frozen=True)
class PathDecision(_Exposure):
    """Verdict across the path subnet NSG then NIC NSG: ``allowed`` only if both allow.

    ``admitted_prefixes``: for the symbolic Internet source when not ``allowed``, the Internet
    prefixes that pass both levels. ``levels``: the two :class:`NsgDecision` (subnet, NIC).
    """

    allowed: bool
    levels: tuple
    admitted_prefixes: tuple = ()

    @property
    def deciding(self):
        """The level that blocks (first denying level), else the last level that has an NSG
        (``None`` when neither level has one)."""
        for decision in self.levels:
            if not decision.allowed:
                return decision
        present = [decision for decision in self.levels if decision.present]
        return present[-1] if present else None

    def as_dict(self):
        deciding = self.deciding
        return {
            "allowed": self.allowed,
            "partial": self.partial,
            "admitted_prefixes": list(self.admitted_prefixes),
            "deciding_level": deciding.level if deciding else None,
            "deciding_rule": deciding.rule_name if deciding else None,
            "deciding_priority": deciding.rule_priority if deciding else None,
            "levels": [decision.as_dict() for decision in self.levels],
        }


def _intersect_tokens(first, second):
    """Tokens admitted by both levels: for overlapping CIDRs the narrower one; equal tags."""
    result = []
    for one in first:
        for other in second:
            a, b = _ipv4_network(one), _ipv4_network(other)
            if a is None or b is None:
                pick = one if one.lower() == other.lower() else None
            elif a.subnet_of(b):
                pick = one
            elif b.subnet_of(a):
                pick = other
            else:
                pick = None
            if pick is not None and pick not in result:
                result.append(pick)
    return tuple(result)


def evaluate_inbound_path(
    subnet_rules, nic_rules, source, destination, port, *, protocol="Tcp", context=None, destination_asgs=(), subnet_nsg=None, nic_nsg=None
):
    """Evaluate the subnet NSG then the NIC NSG (``None`` rules = no NSG at that level: allows).

    Returns a :class:`PathDecision`. Other arguments as for :func:`evaluate_inbound`.
    """
    context = _as_context(context)
    decisions = []
    for rules, level, name in ((subnet_rules, LEVEL_SUBNET, subnet_nsg), (nic_rules, LEVEL_NIC, nic_nsg)):
        if rules is None:
            _check_query(port, protocol)
            decisions.append(NsgDecision(True, level=level, nsg=name, present=False))
        else:
            decisions.append(
                evaluate_inbound(rules, source, destination, port, protocol, context=context, destination_asgs=destination_asgs, level=level, nsg=name)
            )
    subnet, nic = decisions
    allowed = subnet.allowed and nic.allowed
    admitted = ()
    if not allowed and is_internet_source(source):
        if subnet.allowed:
            admitted = nic.admitted_prefixes
        elif nic.allowed:
            admitted = subnet.admitted_prefixes
        else:
            admitted = _intersect_tokens(subnet.admitted_prefixes, nic.admitted_prefixes)
    return PathDecision(allowed, tuple(decisions), admitted)


# --------------------------------------------------------------------------------------------------
# JIT rules

JIT_RULE_PREFIXES = ("MicrosoftDefenderForCloud-JITRule", "SecurityCenter-JITRule")
_JIT_DENY_NAME_RE = re.compile(r"^(?P<gen>MicrosoftDefenderForCloud|SecurityCenter)-JITRule_(?P<number>-?\d+)_(?P<guid>[0-9a-f-]+)$", re.IGNORECASE)
_JIT_ALLOW_NAME_RE = re.compile(r"^(?P<gen>MicrosoftDefenderForCloud|SecurityCenter)-JITRule-(?P<number>-?\d+)-(?P<guid>[0-9a-f-]+)$", re.IGNORECASE)
_JIT_DESCRIPTION_RE = re.compile(
    r"(?P<gen>MDC|ASC)?\s*JIT Network Access rule\s+(?P<initiated>created by an initiation request\s+)?"
    r"for policy '(?P<policy>[^']*)' of VM '(?P<vm>[^']*)'",
    re.IGNORECASE,
)

JitRuleInfo = namedtuple("JitRuleInfo", "kind generation number guid policy vm")
JitRuleInfo.__doc__ = """What a JIT rule is: ``kind`` ``deny`` (the standing block) or ``allow`` (an
initiated request); ``generation`` ``MicrosoftDefenderForCloud`` or ``SecurityCenter`` (``None``
when only the description told); ``number`` the int32 in the name; ``policy``/``vm`` from the
description (``None`` when absent)."""

JIT_KIND_DENY = "deny"
JIT_KIND_ALLOW = "allow"


def parse_jit_description(text):
    """``(policy, vm, initiated)`` from a JIT rule description (MDC or older ASC wording), or
    ``None``. ``initiated`` is True for "created by an initiation request" (an allow rule)."""
    match = _JIT_DESCRIPTION_RE.search(text or "")
    if not match:
        return None
    return (match.group("policy"), match.group("vm"), bool(match.group("initiated")))


def classify_jit_rule(rule, description=None):
    """Recognise a JIT rule by name (primary) or description (fallback); ``None`` otherwise.

    ``rule`` is a :class:`SecurityRule`, a REST/SDK dict or just a name. Names:
    deny ``MicrosoftDefenderForCloud-JITRule_<int32>_<hex>`` / ``SecurityCenter-JITRule_<int32>_<hex>``,
    allow ``MicrosoftDefenderForCloud-JITRule-<int32>-<guid>`` / ``SecurityCenter-JITRule-<int32>-<guid>``.
    """
    if isinstance(rule, str):
        name = rule
    else:
        rule = SecurityRule.from_azure(rule)
        name = rule.name
        description = rule.description if description is None else description
    parsed = parse_jit_description(description)
    policy, vm, initiated = parsed if parsed else (None, None, None)
    for kind, pattern in ((JIT_KIND_DENY, _JIT_DENY_NAME_RE), (JIT_KIND_ALLOW, _JIT_ALLOW_NAME_RE)):
        match = pattern.match(name.strip())
        if match:
            generation = next(prefix for prefix in JIT_RULE_PREFIXES if prefix.lower().startswith(match.group("gen").lower()))
            return JitRuleInfo(kind, generation.split("-")[0], int(match.group("number")), match.group("guid"), policy, vm)
    if parsed:
        return JitRuleInfo(JIT_KIND_ALLOW if initiated else JIT_KIND_DENY, None, None, None, policy, vm)
    return None


def is_jit_deny_rule(rule):
    info = classify_jit_rule(rule)
    return info is not None and info.kind == JIT_KIND_DENY


def is_jit_allow_rule(rule):
    info = classify_jit_rule(rule)
    return info is not None and info.kind == JIT_KIND_ALLOW


@functools.cache
def _default_context():
    """``AddressContext()`` built once: computing the Internet ranges costs milliseconds per call."""
    return AddressContext()


def find_jit_rules(rules, kind=None, destination=None, ports=None, sources=None):
    """JIT rules (inbound) filtered by ``kind`` (deny/allow), ``destination`` (an IPv4 address the
    rule's destination must include), ``ports`` (any of them covered) and ``sources`` (the rule's
    source prefixes equal this set, compared by :func:`source_token`). Sorted by priority."""
    target = _parse_address(destination, "destination") if destination is not None else None
    context = _default_context()
    wanted_sources = source_set(sources) if sources is not None else None
    found = []
    for rule in _as_rules(rules):
        info = classify_jit_rule(rule)
        if info is None or not rule.is_inbound or (kind is not None and info.kind != kind):
            continue
        if target is not None and not any(context.matches(token, target, destination=True) for token in rule.destination_address_prefixes):
            continue
        if ports is not None and not any(rule.covers_port(port) for port in ports):
            continue
        if wanted_sources is not None and source_set(rule.source_address_prefixes) != wanted_sources:
            continue
        found.append(rule)
    return sorted(found, key=lambda rule: (rule.priority, rule.name))


JitBypass = namedtuple("JitBypass", "protected bypassed deny_rule bypass_rules admitted_prefixes")
JitBypass.__doc__ = """Result of :func:`jit_bypass`: ``protected`` when a JIT deny rule covers the
port; ``bypassed`` when, before that deny rule, a non-JIT allow rule admits the Internet (all of
it, or some prefixes: then ``admitted_prefixes`` lists them); ``deny_rule`` and
``bypass_rules`` are rule names."""


def jit_bypass(rules, destination, port, protocol="Tcp", context=None):
    """Whether JIT on ``destination``:``port`` is bypassed in one NSG.

    The first JIT deny rule covering the destination and port is found; the NSG is then evaluated
    for the Internet without JIT allow rules (active requests are JIT working, not a bypass). A
    bypass is an allow rule at higher precedence (lower number) than the deny rule admitting
    all or part of the Internet.
    """
    rules = _as_rules(rules)
    denies = [rule for rule in find_jit_rules(rules, kind=JIT_KIND_DENY, destination=destination, ports=[port]) if rule.covers_protocol(protocol)]
    if not denies:
        _check_query(port, protocol)
        return JitBypass(False, False, None, (), ())
    deny = denies[0]
    others = [rule for rule in rules if not is_jit_allow_rule(rule)]
    decision = evaluate_inbound(others, INTERNET_SOURCE, destination, port, protocol, context=context)
    # The deny rule's source is '*', so it decides unless a rule before it does: an allowing
    # decision, or prefixes admitted before the decision, always come from higher precedence.
    if decision.allowed:
        return JitBypass(True, True, deny.name, (decision.rule_name,), ())
    if decision.partial:
        return JitBypass(True, True, deny.name, decision.admitting_rules, decision.admitted_prefixes)
    return JitBypass(True, False, deny.name, (), ())


# --------------------------------------------------------------------------------------------------
# Priorities


NSG_RULE_LIMIT = 1000
"""Security rules Azure allows in one NSG (beyond: ``SecurityRuleCountLimitReached``)."""


def rule_room(nsg, needed):
    """Why the NSG (a REST dict) cannot take ``needed`` more inbound rules (JIT's), else ``None``:
    Azure's limit of :data:`NSG_RULE_LIMIT` rules per NSG, or no free inbound priority left."""
    if needed <= 0:
        return None
    custom = rest_field(properties_of(nsg), "securityRules") or []  # read raw: asked for every NSG of a fleet
    if len(custom) + needed > NSG_RULE_LIMIT:
        return f"it has {len(custom)} security rules and Azure allows {NSG_RULE_LIMIT} per NSG"
    taken = set()
    for raw in custom:
        props = properties_of(raw)
        with contextlib.suppress(TypeError, ValueError):
            if str(rest_field(props, "direction", INBOUND)).lower() == INBOUND.lower():
                taken.add(int(rest_field(props, "priority")))
    free = PRIORITY_MAX - PRIORITY_MIN + 1 - sum(1 for priority in taken if PRIORITY_MIN <= priority <= PRIORITY_MAX)
    if free < needed:
        return f"it has {free} free inbound priorities ({PRIORITY_MIN}-{PRIORITY_MAX})"
    return None


# --------------------------------------------------------------------------------------------------
# A VM's path and the JIT allow rules on it (jit_request, the close planner, jit_guard)


def source_token(prefix):
    """Comparable form of a source prefix: ``10.0.0.1`` == ``10.0.0.1/32``; "anywhere" -> ``*``."""
    text = str(prefix).strip()
    if text.lower() in ("*", "any", "0.0.0.0/0", "internet"):
        return "*"
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text.lower()


def prefix_contains(token, address):
    """True when the IPv4 address or CIDR ``token`` contains ``address`` (tags and ``*`` never do)."""
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(token.strip(), strict=False)
    except ValueError:
        return False


def vm_paths(record):
    """``{nsg id lower: (nsg id, [private ips behind it])}`` for every NSG on the VM's path."""
    paths = {}
    for nic in record.get("nics") or []:
        address = nic.get("private_ip")
        if not address:
            continue
        for nsg_id in (nic.get("subnet_nsg_id"), nic.get("nic_nsg_id")):
            addresses = paths.setdefault(normalize_id(nsg_id), (nsg_id, []))[1] if nsg_id else None
            if addresses is not None and address not in addresses:  # subnet and NIC may share one NSG
                addresses.append(address)
    for nsg_id in record.get("nsg_ids") or []:  # records without per-NIC NSG ids
        paths.setdefault(normalize_id(nsg_id), (nsg_id, [nic.get("private_ip") for nic in record.get("nics") or [] if nic.get("private_ip")]))
    return paths


def path_pairs(record):
    """``[(nsg id, private ip), ...]``: each NSG on the VM's path with each IP it must admit to."""
    return [(nsg_id, address) for nsg_id, addresses in vm_paths(record).values() for address in addresses]


def source_set(prefixes):
    """The set of :func:`source_token` of ``prefixes``: how two lists of sources are compared."""
    return frozenset(source_token(item) for item in prefixes or ())
