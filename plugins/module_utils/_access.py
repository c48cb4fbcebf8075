# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The JIT rules on a VM's path, found by address: the allow rules that give access (jit_request:
what a request opened, whether Defender has applied it, what was there before) and the deny rules
that keep the ports closed (jit_policy: drift, room for new rules). Pure: NSGs are REST dicts,
paths come from :func:`_nsg.path_pairs`.

Defender writes one deny rule per VM address, and one allow rule per VM address and request, so a
subnet NSG shared by hundreds of VMs holds hundreds of JIT rules: each NSG is parsed once and its
JIT rules are looked up by destination address, never scanned once per VM."""

from __future__ import annotations

import ipaddress

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError, normalize_id, parse_resource_id, properties_of, rest_field
from ansible_collections.jitaccess.azure.plugins.module_utils._nsg import (
    JIT_KIND_ALLOW,
    JIT_KIND_DENY,
    SecurityRule,
    classify_jit_rule,
    find_jit_rules,
    rule_room,
)


def nsg_rule_entries(nsg):
    """``[(SecurityRule, raw dict)]`` for an NSG resource's custom rules (REST shape)."""
    entries = []
    for raw in rest_field(properties_of(nsg), "securityRules") or []:
        try:
            entries.append((SecurityRule.from_azure(raw), raw))
        except JitValidationError:
            continue
    return entries


def rule_fingerprint(raw):
    """(lower-case name, etag): changes when the service creates or rewrites the rule."""
    return (str(raw.get("name", "")).lower(), raw.get("etag"))


_PARSED_NSGS = {}
"""NSG id (lower case) -> (the dict, rules by lower-case name, JIT rules by destination address, the
other JIT rules): each NSG read is parsed once; a newer read of the same NSG (a polling round)
replaces its entry, so the cache never holds more than one read per NSG."""


def _host_address(token):
    """The address a destination token names when it is one host (``10.0.0.4``, ``10.0.0.4/32``), else None."""
    text = str(token).strip()
    if text.endswith("/32"):
        text = text[:-3]
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _parsed(nsg):
    """The cached parse of ``nsg``: its rules by name, its JIT rules by destination address."""
    key = normalize_id(str(nsg.get("id") or id(nsg)))
    cached = _PARSED_NSGS.get(key)
    if cached is None or cached[0] is not nsg:
        entries = nsg_rule_entries(nsg)
        by_address, wide = {}, []
        for rule, _raw in entries:
            if classify_jit_rule(rule) is None:
                continue
            hosts = [_host_address(token) for token in rule.destination_address_prefixes]
            if None in hosts:  # a range, a tag or '*': checked for every address
                wide.append(rule)
                continue
            for host in set(hosts):
                by_address.setdefault(host, []).append(rule)
        cached = _PARSED_NSGS[key] = (nsg, {rule.name.lower(): raw for rule, raw in entries}, by_address, wide)
    return cached


def _jit_rules_at(nsg, address):
    """``(rules by lower-case name, the JIT rules that may apply to address)``: a superset that
    :func:`_nsg.find_jit_rules` narrows down exactly."""
    _nsg_object, by_name, by_address, wide = _parsed(nsg)
    return by_name, by_address.get(_host_address(address), []) + wide


def allow_rules(nsg, ip, port, sources=None):
    """JIT allow rules in ``nsg`` admitting ``port`` to ``ip``; with ``sources``, only those whose
    sources are exactly that set. Returns ``[(SecurityRule, raw)]`` sorted by priority."""
    by_name, candidates = _jit_rules_at(nsg, ip)
    found = find_jit_rules(candidates, kind=JIT_KIND_ALLOW, destination=ip, ports=[port], sources=sources or None)
    return [(rule, by_name[rule.name.lower()]) for rule in found if rule.is_allow]


def deny_rules(nsg, address):
    """The JIT deny rules of ``nsg`` whose destination includes ``address``, sorted by priority."""
    return find_jit_rules(_jit_rules_at(nsg, address)[1], kind=JIT_KIND_DENY, destination=address)


def missing_deny_ports(nsg, address, ports):
    """The ``ports`` of ``address`` that no JIT deny rule of ``nsg`` (a REST dict) covers, sorted:
    what another tool deleted (drift). JIT deny rules have protocol ``*``, so only ports count."""
    denies = deny_rules(nsg, address)
    return sorted({port for port in ports if not any(rule.covers_port(port) for rule in denies)})


def allow_rule_room(requested, nsgs):
    """Why NSGs on the paths cannot take the allow rules a request adds (Azure's rule limit, or no
    free priority: Defender would never apply them), one text per NSG; ``[]`` when all can.
    ``requested``: ``[(path pairs, VM id, port numbers)]``; ``nsgs``: lower-case id -> NSG. A port
    whose allow rule is already there gets it replaced, and one rule serves all of a VM's IPs."""
    fresh = {}  # (NSG, VM, port) -> one allow rule
    for paths, vm_id, ports in requested:
        for nsg_id, ip in paths:
            nsg = nsgs.get(normalize_id(nsg_id))
            for port in ports:
                if nsg is not None and not allow_rules(nsg, ip, port):
                    fresh[(normalize_id(nsg_id), vm_id, port)] = True
    needed = {}
    for key, _vm, _port in fresh:
        needed[key] = needed.get(key, 0) + 1
    problems = []
    for key, count in needed.items():
        reason = rule_room(nsgs[key], count)
        if reason:
            problems.append("NSG %s cannot take the %d JIT allow rule(s) this request needs: %s" % (nsgs[key].get("name") or key, count, reason))
    return problems


def rule_id(nsg_id, name):
    return "%s/securityRules/%s" % (nsg_id, name)


def describe_rule(nsg_id, rule):
    return {
        "id": rule_id(nsg_id, rule.name),
        "nsg_id": nsg_id,
        "name": rule.name,
        "priority": rule.priority,
        "source_address_prefixes": list(rule.source_address_prefixes),
        "destination_address_prefixes": list(rule.destination_address_prefixes),
    }


def access_on_path(paths, nsgs, port, sources=None, exclude=None):
    """Look for the allow rule of ``port`` on every (NSG, IP) pair of a VM.

    ``nsgs`` maps lower-case NSG id -> NSG resource; ``exclude`` is a set of rule fingerprints
    that do not count (rules that existed before an initiate). Returns ``(access, missing)``:
    ``access`` the best rule per pair found (dicts from :func:`describe_rule`), ``missing`` the
    ``(nsg id, ip)`` pairs without one.
    """
    access, missing = [], []
    for nsg_id, ip in paths:
        nsg = nsgs.get(normalize_id(nsg_id))
        found = []
        if nsg is not None:
            found = [(rule, raw) for rule, raw in allow_rules(nsg, ip, port, sources) if not exclude or rule_fingerprint(raw) not in exclude]
        if found:
            access.append(describe_rule(nsg_id, found[0][0]))
        else:
            missing.append((nsg_id, ip))
    return access, missing


def baseline_fingerprints(paths, nsgs, port):
    """Fingerprints of the allow rules for ``port`` already on a VM's path (any source)."""
    result = set()
    for nsg_id, ip in paths:
        nsg = nsgs.get(normalize_id(nsg_id))
        if nsg is not None:
            result.update(rule_fingerprint(entry[1]) for entry in allow_rules(nsg, ip, port))
    return result


def format_missing(missing, names):
    """``VM web-1 port 22 on NSG nsg-web (10.1.0.4)``, joined; ``names`` maps lower NSG id -> name."""
    parts = []
    for vm_name, port, nsg_id, ip in missing:
        parts.append("VM %s port %s on NSG %s (destination %s)" % (vm_name, port, names.get(normalize_id(nsg_id), nsg_id), ip))
    return "; ".join(parts)


def joined(sources):
    """Sources as the results show them (``10.0.0.0/24,10.1.0.4``); ``None`` when unknown."""
    return ",".join(sources) if sources else None


def rule_ref(rule):
    """``{vm_name, nsg_id, name}`` of a rule planned by :func:`_close.plan_close`."""
    return {"vm_name": rule["vm_name"], "nsg_id": rule["nsg_id"], "name": rule["rule_name"]}


def nsg_rule_refs(access):
    """``[{id, nsg_id, name}]`` of the allow rules in an ``access`` list."""
    return [{"id": rule["id"], "nsg_id": rule["nsg_id"], "name": rule["name"]} for rule in access]


def nsg_name(nsg_id):
    """The name in an NSG id (the text itself when it is not an id), for messages."""
    try:
        return parse_resource_id(nsg_id).name
    except JitValidationError:
        return nsg_id
