# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Azure Bastion: which Bastion host can reach a VM, its AzureBastionSubnet prefixes, and
whether a VM is reachable only through Bastion. Pure: works on REST-shaped lists already read.

A Bastion host reaches the VMs of its own virtual network and of virtual networks directly peered
with it (peering state ``Connected``); it connects from its ``AzureBastionSubnet``, so that
subnet's address prefixes are the source a JIT policy should allow and a JIT request should ask for.
"""

from __future__ import annotations

import ipaddress
from collections import namedtuple

from ansible_collections.jitaccess.azure.plugins.module_utils import _jit, _nsg
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import (
    AUTO,
    JitValidationError,
    bastion_reference,
    normalize_id,
    parse_resource_id,
    properties_of,
)

BASTION_SUBNET_NAME = "AzureBastionSubnet"
Bastion = namedtuple("Bastion", "id name vnet_id subnet_id prefixes")
"""A Bastion host: its id, name, the (lower-cased) id of its VNet and subnet, the subnet's prefixes."""


def policy_bastion_option(params, subscription=None):
    """jit_policy's ``bastion`` (:func:`_arm.bastion_reference`), refused together with an allowed
    source prefix in ``ports``, ``ports_by_os_type`` or a VM's own ``ports`` (which it replaces)."""
    choice = bastion_reference(params.get("bastion"), subscription)
    named = [("ports", params.get("ports"))] + [(f"ports_by_os_type[{key!r}]", rules) for key, rules in (params.get("ports_by_os_type") or {}).items()]
    named += [(f"ports of virtual machine {vm.get('name') or vm.get('id')}", vm.get("ports")) for vm in params.get("virtual_machines") or []]
    for name, rules in named if choice else ():
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict) and (rule.get("allowed_source_address_prefixes") is not None or rule.get("allowed_source_address_prefix") is not None):
                raise JitValidationError(
                    f"bastion {params['bastion']!r} and the allowed source prefixes of {name} (port {rule.get('number')}) are mutually exclusive:"
                    " with bastion the Bastion subnet is every port's allowed source; remove one"
                )
    return choice


def subscription_of(resource_id):
    return parse_resource_id(resource_id).subscription


def _vnet_of(subnet_id):
    return normalize_id(subnet_id).rpartition("/subnets/")[0]


def _subnet_prefixes(subnet):
    props = properties_of(subnet)
    prefixes = list(props.get("addressPrefixes") or [])
    if props.get("addressPrefix"):
        prefixes.insert(0, props["addressPrefix"])
    return tuple(dict.fromkeys(prefixes))


def index_networks(virtual_networks):
    """``{vnet id (lower): {"subnets": {subnet id (lower): prefixes}, "peers": [remote VNet ids
    (lower) of its Connected peerings]}}`` from a VNet list (peerings as ``properties.virtualNetworkPeerings``)."""
    index = {}
    for vnet in virtual_networks:
        props = properties_of(vnet)
        peers = []
        for peering in props.get("virtualNetworkPeerings") or []:
            peering_props = properties_of(peering)
            remote = (peering_props.get("remoteVirtualNetwork") or {}).get("id")
            if remote and str(peering_props.get("peeringState") or "").lower() == "connected":
                peers.append(normalize_id(remote))
        subnets = {normalize_id(subnet.get("id")): _subnet_prefixes(subnet) for subnet in props.get("subnets") or []}
        index[normalize_id(vnet.get("id"))] = {"subnets": subnets, "peers": peers}
    return index


def remote_subscriptions(networks, vnet_ids):
    """Subscriptions of the VNets peered (Connected) with ``vnet_ids``: where a hub may live."""
    found = {}
    for vnet_id in vnet_ids:
        for remote in (networks.get(normalize_id(vnet_id)) or {}).get("peers", ()):
            subscription = remote.split("/")[2] if remote.count("/") > 2 else ""
            found.setdefault(subscription.lower(), subscription)
    return [subscription for subscription in found.values() if subscription]


def index_bastions(bastion_hosts, networks):
    """``{bastion id (lower): Bastion}``; ``prefixes`` empty when its subnet was not listed."""
    index = {}
    for host in bastion_hosts:
        configs = properties_of(host).get("ipConfigurations") or []
        subnet_id = next((properties_of(config).get("subnet") or {}).get("id") for config in configs) if configs else None
        if not subnet_id:
            continue
        vnet_id = _vnet_of(subnet_id)
        prefixes = (networks.get(vnet_id) or {}).get("subnets", {}).get(normalize_id(subnet_id), ())
        index[normalize_id(host.get("id"))] = Bastion(host.get("id"), host.get("name"), vnet_id, normalize_id(subnet_id), tuple(prefixes))
    return index


def vm_vnet_ids(record):
    """Lower-cased ids of the VNets a VM's NICs are in, in NIC order."""
    return list(dict.fromkeys(_vnet_of(nic["subnet_id"]) for nic in record.get("nics") or [] if nic.get("subnet_id")))


def reachable(record, networks, bastions):
    """``(own, peered)``: the Bastion hosts of the VM's own VNet(s), and of VNets peered with
    them (Connected), each sorted by id."""
    own_vnets = set(vm_vnet_ids(record))
    peer_vnets = {peer for vnet_id in own_vnets for peer in (networks.get(vnet_id) or {}).get("peers", ())} - own_vnets
    own = sorted((host for host in bastions.values() if host.vnet_id in own_vnets), key=lambda host: normalize_id(host.id))
    peered = sorted((host for host in bastions.values() if host.vnet_id in peer_vnets), key=lambda host: normalize_id(host.id))
    return own, peered


def resolve(choice, records, networks, bastions):
    """``{vm id (lower): Bastion}`` for every VM record: with :data:`AUTO` the one Bastion of its
    own VNet, else the one of a VNet peered with it; with a Bastion id, that host, which must reach
    the VM. Raises :class:`JitValidationError` naming every VM without exactly one usable Bastion
    and its candidates (before anything is written)."""
    chosen, problems = {}, []
    named = None
    if choice != AUTO:
        named = bastions.get(normalize_id(choice))
        if named is None:
            raise JitValidationError(f"bastion host {choice} does not exist (Bastion hosts found: {_names(bastions.values()) or 'none'})")
    for record in records:
        own, peered = reachable(record, networks, bastions)
        label = f"VM {record['name']} ({record['id']})"
        if named is not None:
            found = [named] if named in own + peered else []
            if not found:
                where = "neither in the VM's virtual network nor in one peered with it (Connected)"
                problems.append(f"Azure Bastion {named.name} cannot reach {label}: it is {where}")
        else:
            found = own or peered
            if not found:
                vnets = ", ".join(vm_vnet_ids(record)) or "none"
                problems.append(f"no Azure Bastion can reach {label}: none in its virtual network ({vnets}) or in a virtual network peered with it (Connected)")
            elif len(found) > 1:
                problems.append(f"more than one Azure Bastion can reach {label} ({_names(found)}): name one with bastion")
        if len(found) == 1 and not found[0].prefixes:
            problems.append(f"the subnet of Azure Bastion {found[0].name} ({found[0].subnet_id}) has no address prefix that could be read")
        elif len(found) == 1:
            chosen[normalize_id(record["id"])] = found[0]
    if problems:
        raise JitValidationError("bastion: %s. Nothing was written" % "; ".join(problems))
    return chosen


def _names(hosts):
    return ", ".join(f"{host.name} ({host.id})" for host in hosts)


def request_source(host):
    """The one source a JIT request from ``host`` asks for: its subnet's prefix (the initiate API
    takes one source per port)."""
    if len(host.prefixes) != 1:
        raise JitValidationError(
            f"the subnet of Azure Bastion {host.name} has {len(host.prefixes)} address prefixes ({', '.join(host.prefixes)}):"
            " the JIT initiate API takes one source per port; use source_address_prefixes instead"
        )
    return (str(ipaddress.ip_network(host.prefixes[0], strict=False)),)


def with_sources(ports, prefixes):
    """Canonical policy port rules with ``prefixes`` as their allowed sources."""
    result = []
    for port in ports:
        kept = {key: value for key, value in port.items() if not key.startswith("allowedSourceAddressPrefix")}
        result.append(_jit.canonical_port(dict(kept, allowedSourceAddressPrefixes=list(prefixes))))
    return result


# --------------------------------------------------------------------------------------------------
# nsg_jit_facts: reachable only through Bastion


def _within(token, networks):
    """True when source ``token`` (a CIDR or address) lies inside one of ``networks``."""
    try:
        network = ipaddress.ip_network(str(token).strip(), strict=False)
    except ValueError:
        return False  # "*", service tags, ASGs: wider than any Bastion subnet
    return any(network.version == block.version and network.subnet_of(block) for block in networks)


def admitted_sources(rules, address, port, protocol, context):
    """Source tokens of the allow rules that can admit ``port``/``protocol`` to ``address``,
    in evaluation order, up to the first deny of every source (such as a JIT deny rule). An allow
    by application security group counts as ``*`` (which sources it holds is not known here)."""
    target = ipaddress.ip_address(address)
    found = []
    for rule in _nsg.ordered_inbound_rules(rules):
        if not (rule.covers_protocol(protocol) and rule.covers_port(port)):
            continue
        if rule.destination_application_security_groups:
            hits = rule.is_allow
        else:
            hits = any(context.matches(token, target, destination=True) for token in rule.destination_address_prefixes)
        if not hits:
            continue
        if rule.is_allow:
            found.extend(rule.source_address_prefixes or ())
            found.extend("*" for _asg in rule.source_application_security_groups)
        elif rule.any_source_port() and any(_nsg.source_token(token) == "*" for token in rule.source_address_prefixes):
            break
    return found


def nic_check(nsgs, address, pairs, context):
    """Per NSG on a NIC's path (objects with ``rules_for(address)``), per ``(port, protocol)`` of
    ``pairs``: the sources :func:`admitted_sources` finds."""
    return [[admitted_sources(nsg.rules_for(address), address, port, protocol, context) for port, protocol in pairs] for nsg in nsgs]


def bastion_only(nic_checks, policy_sources, exposure, hosts):
    """Whether a VM is reachable only through Azure Bastion.

    True when a Bastion can reach it (``hosts``), no management port is exposed to the Internet
    (``exposure``), every source its JIT policy allows for those ports (``policy_sources``) lies in
    a Bastion subnet, and on each NIC at least one NSG of the path admits those ports only from
    Bastion subnets. ``nic_checks``: per NIC, per NSG on its path, the admitted source lists of
    :func:`admitted_sources` (one per port); a NIC without NSG or address fails.
    """
    if not hosts or not nic_checks or any(item.get("exposed") for item in exposure):
        return False
    networks = [ipaddress.ip_network(prefix, strict=False) for host in hosts for prefix in host.prefixes if _valid(prefix)]
    if not all(_within(token, networks) for token in policy_sources):
        return False
    return all(any(all(_within(token, networks) for sources in nsg for token in sources) for nsg in nic) for nic in nic_checks)


def _valid(prefix):
    try:
        ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return True
