# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Close JIT access early: find the JIT allow rules that admit given VM ports and delete them.

Shared by ``jit_request state=absent`` and the ``jit_guard`` callback, so both close the same
way. :func:`plan_close` is pure; :func:`delete_rules` does the ARM calls (through :mod:`_api`).

A *target* is a dict ``{"vm_id": ..., "ports": [22, ...] or None, "sources": ["10.0.0.1", ...]
or None}``: ``None`` ports means every port, ``None`` sources means any source. A rule is deleted
only when it carries a JIT allow-rule name (``MicrosoftDefenderForCloud-JITRule-…`` /
``SecurityCenter-JITRule-…``), admits only the VM's private IPs, only ports asked for and (with
sources) only sources among them - the same selection as ``jit_request state=absent``. JIT deny
rules and every other rule are never touched.
"""

from __future__ import annotations

from ansible_collections.jitaccess.azure.plugins.module_utils._api import NETWORK_API_VERSION
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import normalize_id, parse_resource_id
from ansible_collections.jitaccess.azure.plugins.module_utils._nsg import (
    JIT_KIND_ALLOW,
    classify_jit_rule,
    prefix_contains,
    rules_from_nsg,
    source_set,
    source_token,
    vm_paths,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._topology import build_topology, nsgs_by_id, read_inventory

CLOSE_INVENTORY_KINDS = ("virtual_machines", "network_interfaces", "network_security_groups", "virtual_networks")


def _port_number(value):
    if isinstance(value, dict):
        value = value.get("number", value.get("port"))
    return int(value)


def _rule_ports(rule, limit=64):
    """The individual ports a rule admits, or ``None`` for a wide range."""
    ports = set()
    for low, high in rule.destination_ranges:
        if high - low >= limit:
            return None
        ports.update(range(low, high + 1))
    return ports


def normalize_target(target):
    """``{"vm_id", "ports", "sources"}`` with ports as sorted ints (or None) and sources as a
    sorted list of strings (or None)."""
    vm_id = target.get("vm_id") or target.get("id")
    if not vm_id:
        raise ValueError("close target %r has no vm_id" % (target,))
    ports = target.get("ports")
    if ports is None and target.get("port") is not None:
        ports = [target["port"]]
    sources = target.get("sources")
    if sources is None and target.get("source") is not None:
        sources = target["source"]
    if isinstance(sources, str):
        sources = [sources]
    return {
        "vm_id": vm_id,
        "ports": sorted({_port_number(port) for port in ports}) if ports is not None else None,
        "sources": sorted({str(source) for source in sources}) if sources else None,
    }


def _why_not(rule, addresses, ports, sources):
    """``None`` when deleting ``rule`` closes exactly what was asked, else the reason to keep it.

    Certainty first: the rule must carry a JIT allow-rule *name* (a JIT-like description alone is
    not enough), admit only the VM's private IPs, only ports asked for, and - with ``sources`` -
    only sources among them.
    """
    info = classify_jit_rule(rule)
    if info is None or info.kind != JIT_KIND_ALLOW or info.generation is None or not rule.is_inbound or not rule.is_allow:
        return "not a JIT allow rule"
    vm_tokens = {source_token(address) for address in addresses}
    destinations = {source_token(token) for token in rule.destination_address_prefixes}
    if not any(prefix_contains(token, address) for token in rule.destination_address_prefixes for address in addresses):
        return "not for this VM"
    if destinations - vm_tokens:
        return "it also admits other destinations (%s)" % ", ".join(rule.destination_address_prefixes)
    covered = _rule_ports(rule)
    if ports is not None:
        if not any(rule.covers_port(port) for port in ports):
            return "not for these ports"
        if covered is None or covered - set(ports):
            return "it also admits ports not asked for (%s)" % ", ".join(rule.destination_port_ranges)
    elif covered is None:
        return "it admits a port range; name the ports to close"
    if sources is not None and not source_set(rule.source_address_prefixes) <= source_set(sources):
        return "not for these sources"
    return None


def plan_close(topology, nsgs, targets):
    """The JIT allow rules to delete for ``targets`` (pure).

    ``topology`` is :func:`_topology.build_topology` output, ``nsgs`` maps lower-cased NSG ids to
    REST dicts (:func:`_topology.nsgs_by_id`). Returns ``(rules, unknown_vm_ids, kept)``: ``rules``
    a list of dicts (vm_id, vm_name, nsg_id, nsg_name, resource_group, rule_name, priority, ports,
    port_numbers, sources, destination), one per rule, in a stable order; ``kept`` the JIT allow rules for those
    VMs and ports that were left alone because deleting them would close more than asked
    (dicts with nsg_id, rule_name, reason).
    """
    planned = {}
    unknown = []
    kept = {}
    for raw in targets:
        target = normalize_target(raw)
        record = topology.get(normalize_id(target["vm_id"]))
        if record is None:
            unknown.append(target["vm_id"])
            continue
        for nsg_key, (nsg_id, addresses) in vm_paths(record).items():
            nsg = nsgs.get(nsg_key)
            if nsg is None:
                continue
            for rule in rules_from_nsg(nsg):
                if rule.is_default:
                    continue
                key = (nsg_key, rule.name.lower())
                reason = _why_not(rule, addresses, target["ports"], target["sources"])
                if reason is None:
                    kept.pop(key, None)
                    if key not in planned:
                        parsed = parse_resource_id(nsg_id)
                        planned[key] = {
                            "port_numbers": sorted(_rule_ports(rule)),
                            "vm_id": record["id"],
                            "vm_name": record["name"],
                            "nsg_id": nsg.get("id") or nsg_id,
                            "nsg_name": parsed.name,
                            "resource_group": parsed.resource_group,
                            "rule_name": rule.name,
                            "priority": rule.priority,
                            "ports": list(rule.destination_port_ranges),
                            "sources": list(rule.source_address_prefixes),
                            "destination": list(rule.destination_address_prefixes),
                        }
                elif reason.startswith("it ") and key not in planned:
                    kept[key] = {"nsg_id": nsg.get("id") or nsg_id, "rule_name": rule.name, "vm_id": record["id"], "reason": reason}
    return [planned[key] for key in sorted(planned)], unknown, [kept[key] for key in sorted(kept)]


def describe_planned_rule(rule):
    """A rule planned by :func:`plan_close` in jit_request's ``access`` shape (see ``_nsg.describe_rule``)."""
    return {
        "id": "%s/securityRules/%s" % (rule["nsg_id"], rule["rule_name"]),
        "nsg_id": rule["nsg_id"],
        "name": rule["rule_name"],
        "priority": rule["priority"],
        "source_address_prefixes": list(rule["sources"]),
        "destination_address_prefixes": list(rule["destination"]),
    }


def delete_rules(api, call, rules):
    """Delete ``rules`` (from :func:`plan_close`): start every deletion, then wait for each.

    ``call(action, function)`` runs one ARM call (a module's ``azure_call``, or a callback's
    error-collecting wrapper). Returns the rules whose deletion completed.
    """
    started = []
    for rule in rules:
        action = "delete JIT allow rule %s on NSG %s" % (rule["rule_name"], rule["nsg_name"])
        rule_id = "%s/securityRules/%s" % (rule["nsg_id"], rule["rule_name"])
        operation = call(action, lambda rule_id=rule_id: api.begin_delete(rule_id, NETWORK_API_VERSION))
        if operation is not None:
            started.append((rule, action, operation))
    deleted = []
    for rule, action, operation in started:
        if call(action, lambda operation=operation: api.wait(operation) or True):
            deleted.append(rule)
    return deleted


def read_close_state(api, call):
    """Topology and NSGs for :func:`plan_close`: four paged list calls (VMs, NICs, NSGs, VNets)."""
    inventory = read_inventory(api, call, kinds=CLOSE_INVENTORY_KINDS)
    return build_topology(inventory), nsgs_by_id(inventory)
