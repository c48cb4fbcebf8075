# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Close JIT access early: find the JIT allow rules that admit given VM ports and delete them.

Shared by ``jit_request state=absent`` and the ``jit_guard`` callback, so both close the same
way. :func:`plan_close` is pure; :func:`delete_rules` and :func:`close_access` do the SDK calls.

A *target* is a dict ``{"vm_id": ..., "ports": [22, ...] or None, "sources": ["10.0.0.1", ...]
or None}``: ``None`` ports means every port, ``None`` sources means any source. Only JIT allow
rules (``MicrosoftDefenderForCloud-JITRule-…`` / ``SecurityCenter-JITRule-…`` or the "created by
an initiation request" description) whose destination is one of the VM's private IPs are
candidates; JIT deny rules and every other rule are never touched.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.jitaccess.azure.plugins.module_utils._jit import normalize_id, parse_resource_id
from ansible_collections.jitaccess.azure.plugins.module_utils._nsg import JIT_KIND_ALLOW, find_jit_rules, rules_from_nsg

CLOSE_INVENTORY_KINDS = ("virtual_machines", "network_interfaces", "network_security_groups", "virtual_networks")


def _port_number(value):
    if isinstance(value, dict):
        value = value.get("number", value.get("port"))
    return int(value)


def _names_address(tokens, address):
    """True when one of ``tokens`` is an IPv4 address or CIDR that contains ``address``."""
    for token in tokens:
        try:
            if ipaddress.ip_address(address) in ipaddress.ip_network(token.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


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


def plan_close(topology, nsgs, targets):
    """The JIT allow rules to delete for ``targets`` (pure).

    ``topology`` is :func:`_topology.build_topology` output, ``nsgs`` maps lower-cased NSG ids to
    REST dicts (:func:`_topology.nsgs_by_id`). Returns ``(rules, unknown_vm_ids)``: ``rules`` is
    a list of dicts (vm_id, vm_name, nsg_id, nsg_name, resource_group, rule_name, priority,
    ports, sources, destination), one per rule, without duplicates, in a stable order.
    """
    planned = {}
    unknown = []
    for raw in targets:
        target = normalize_target(raw)
        record = topology.get(normalize_id(target["vm_id"]))
        if record is None:
            unknown.append(target["vm_id"])
            continue
        addresses = [nic["private_ip"] for nic in record["nics"] if nic.get("private_ip")]
        for nsg_id in record["nsg_ids"]:
            nsg = nsgs.get(normalize_id(nsg_id))
            if nsg is None:
                continue
            rules = [rule for rule in rules_from_nsg(nsg) if not rule.is_default]
            for address in addresses:
                for rule in find_jit_rules(rules, kind=JIT_KIND_ALLOW, destination=address, ports=target["ports"], sources=target["sources"]):
                    if not _names_address(rule.destination_address_prefixes, address):
                        continue  # JIT allow rules name the VM's address; never widen to tags or '*'
                    key = (normalize_id(nsg_id), rule.name.lower())
                    if key in planned:
                        continue
                    parsed = parse_resource_id(nsg_id)
                    planned[key] = {
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
    return [planned[key] for key in sorted(planned)], unknown


def delete_rules(clients, call, rules):
    """Delete ``rules`` (from :func:`plan_close`): start every deletion, then wait for each.

    ``call(action, function)`` runs one SDK call (a module's ``azure_call``, or a callback's
    error-collecting wrapper). Returns the rules whose deletion completed.
    """
    network = clients.network
    pollers = []
    for rule in rules:
        action = "delete JIT allow rule %s on NSG %s" % (rule["rule_name"], rule["nsg_name"])
        poller = call(
            action,
            lambda rule=rule: network.security_rules.begin_delete(rule["resource_group"], rule["nsg_name"], rule["rule_name"]),
        )
        if poller is not None:
            pollers.append((rule, action, poller))
    deleted = []
    for rule, action, poller in pollers:
        if call(action, lambda poller=poller: poller.result() or True):
            deleted.append(rule)
    return deleted


def read_close_state(clients, call):
    """Topology and NSGs for :func:`plan_close`: four paged list calls (VMs, NICs, NSGs, VNets)."""
    from ansible_collections.jitaccess.azure.plugins.module_utils._topology import build_topology, nsgs_by_id, read_inventory

    inventory = read_inventory(clients, call, kinds=CLOSE_INVENTORY_KINDS)
    return build_topology(inventory), nsgs_by_id(inventory)


def close_access(clients, call, targets, check_mode=False):
    """Close ``targets`` now. Returns ``(deleted_rules, planned_rules, unknown_vm_ids)``."""
    topology, nsgs = read_close_state(clients, call)
    planned, unknown = plan_close(topology, nsgs, targets)
    if check_mode or not planned:
        return [], planned, unknown
    return delete_rules(clients, call, planned), planned, unknown
