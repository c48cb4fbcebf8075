# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""VM -> NIC -> subnet -> NSG resolution from bulk list calls.

:func:`read_inventory` makes a constant number of paged list calls per subscription (VMs, NICs,
NSGs, VNets, public IPs), whatever the VM count. :func:`build_topology` is pure: it joins those
REST-shaped lists into one record per VM describing every NSG on its network path.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time

from ansible_collections.jitaccess.azure.plugins.module_utils import _bastion
from ansible_collections.jitaccess.azure.plugins.module_utils._api import COMPUTE_API_VERSION, NETWORK_API_VERSION, resource_path
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import (
    JitValidationError,
    bastion_reference,
    normalize_id,
    normalize_location,
    parse_resource_id,
    properties_of,
    vm_id_from_reference,
)

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode

UNSUPPORTED_NO_NSG = "no network security group on any NIC or subnet of the VM"
UNSUPPORTED_NO_NIC = "the VM has no network interface"


def _ref_id(value):
    return (value or {}).get("id")


def resource_group_of(resource_id):
    return parse_resource_id(resource_id).resource_group


class Inventory:
    """The raw bulk reads: lists of REST dicts, one per resource kind."""

    KINDS = ("virtual_machines", "network_interfaces", "network_security_groups", "virtual_networks", "public_ip_addresses", "bastion_hosts")

    def __init__(
        self,
        virtual_machines=None,
        network_interfaces=None,
        network_security_groups=None,
        virtual_networks=None,
        public_ip_addresses=None,
        *,
        bastion_hosts=None,
    ):
        given = dict(
            virtual_machines=virtual_machines,
            network_interfaces=network_interfaces,
            network_security_groups=network_security_groups,
            virtual_networks=virtual_networks,
            public_ip_addresses=public_ip_addresses,
            bastion_hosts=bastion_hosts,
        )
        self.kinds = tuple(kind for kind in self.KINDS if given[kind] is not None)  # what was read (or reused)
        for kind in self.KINDS:
            setattr(self, kind, list(given[kind] or ()))

    def release(self, *kinds):
        """Empty the lists of ``kinds`` (the raw reads dominate a large run's memory: a caller done
        with them frees them early, and what it builds next reuses that memory)."""
        for kind in kinds:
            getattr(self, kind).clear()


KIND_WORDS = {
    "virtual_machines": "VMs",
    "network_interfaces": "network interfaces",
    "network_security_groups": "NSGs",
    "virtual_networks": "virtual networks",
    "public_ip_addresses": "public IPs",
    "bastion_hosts": "Bastion hosts",
}


def describe_inventory(inventory, subscriptions, reused=None):
    """One progress line: what a read found, e.g. "listed 10,000 VMs, 10,000 network interfaces,
    ... in 1 subscription (VMs from the saved inventory)"."""
    held = set(reused.kinds) if reused is not None else set()
    counts = ", ".join(f"{len(getattr(inventory, kind)):,} {KIND_WORDS.get(kind, kind)}" for kind in inventory.kinds)
    text = "listed %s in %d subscription%s" % (counts, len(subscriptions), "" if len(subscriptions) == 1 else "s")
    if held & set(inventory.kinds):
        text += " (%s from the saved inventory)" % ", ".join(KIND_WORDS.get(kind, kind) for kind in inventory.kinds if kind in held)
    return text


RAW_LISTS = {
    # kind: (provider path, api-version, extra query parameters)
    "virtual_machines": ("Microsoft.Compute/virtualMachines", COMPUTE_API_VERSION, {"statusOnly": "true"}),
    "network_interfaces": ("Microsoft.Network/networkInterfaces", NETWORK_API_VERSION, {}),
    "network_security_groups": ("Microsoft.Network/networkSecurityGroups", NETWORK_API_VERSION, {}),
    "virtual_networks": ("Microsoft.Network/virtualNetworks", NETWORK_API_VERSION, {}),
    "public_ip_addresses": ("Microsoft.Network/publicIPAddresses", NETWORK_API_VERSION, {}),
    "bastion_hosts": ("Microsoft.Network/bastionHosts", NETWORK_API_VERSION, {}),
}
"""What :func:`read_inventory` lists, one paged subscription-wide list per kind."""

RAW_LIST_ACTIONS = {
    "virtual_machines": "list virtual machines",
    "network_interfaces": "list network interfaces",
    "network_security_groups": "list network security groups",
    "virtual_networks": "list virtual networks",
    "public_ip_addresses": "list public IP addresses",
    "bastion_hosts": "list Bastion hosts",
}
CORE_KINDS = Inventory.KINDS[:5]
"""What :func:`read_inventory` lists by default: Bastion hosts only when asked (nsg_jit_facts; the
``bastion`` option through :func:`resolve_bastions`)."""


# Members this collection never reads, dropped from each listed item as its page arrives: about a
# fifth of a 10,000-VM inventory in memory. Etags stay (a rule's etag is its identity, _nsg).
_UNREAD = {
    "virtual_machines": (("type", "provisioningState"), ("osProfile", "hardwareProfile", "provisioningState", "vmId")),
    "network_interfaces": (("type", "kind"), ("dnsSettings", "macAddress", "hostedWorkloads", "tapConfigurations", "provisioningState", "resourceGuid")),
    "network_security_groups": (("type",), ("provisioningState", "resourceGuid")),
    "virtual_networks": (("type",), ("provisioningState", "resourceGuid")),
    "public_ip_addresses": (("type",), ("provisioningState", "resourceGuid")),
    "bastion_hosts": (("type",), ("provisioningState", "dnsName", "scaleUnits")),
}


def _slim(kind):
    top, in_properties = _UNREAD[kind]
    shared_defaults = {}  # Azure's six default rules, the same in every NSG: one copy each

    def share_defaults(properties):
        rules = properties.get("defaultSecurityRules")
        if not isinstance(rules, list):
            return
        for index, rule in enumerate(rules):
            if isinstance(rule, dict):
                rule.pop("id", None)  # never read: a default rule cannot be deleted or named
                rule.pop("etag", None)
                rules[index] = shared_defaults.setdefault(_ENCODE(rule), rule)

    def drop(item):
        for key in top:
            item.pop(key, None)
        properties = item.get("properties")
        if not isinstance(properties, dict):
            return
        for key in in_properties:
            properties.pop(key, None)
        view = properties.get("instanceView")
        if isinstance(view, dict):  # only the status codes are read
            properties["instanceView"] = {"statuses": [{"code": status.get("code")} for status in view.get("statuses") or [] if isinstance(status, dict)]}
        for part_key in ("securityRules", "defaultSecurityRules", "ipConfigurations", "subnets"):
            for part in properties.get(part_key) or ():
                if isinstance(part, dict):
                    part.pop("type", None)
                    inner = part.get("properties")
                    if isinstance(inner, dict):
                        inner.pop("provisioningState", None)
        if kind == "network_security_groups":
            share_defaults(properties)

    return drop


def list_kind(api, kind, subscription_id=None, resource_group=None):
    """Every resource of one :data:`RAW_LISTS` kind in a subscription (default: the API's), or in
    one of its resource groups, as REST dicts without the members this collection never reads: one
    paged list."""
    path, api_version, extra = RAW_LISTS[kind]
    if resource_group:
        scope = "/subscriptions/%s/resourceGroups/%s/providers/%s" % (subscription_id or api.subscription_id, resource_group, path)
        return api.list(resource_path(scope), api_version, extra, each=_slim(kind))
    return api.list_in_subscription(path, api_version, extra, subscription_id=subscription_id, each=_slim(kind))


def read_nsg(api, nsg_id):
    """One network security group as REST JSON (a vanished NSG raises ``ResourceNotFoundError``)."""
    return api.request("GET", resource_path(nsg_id), NETWORK_API_VERSION)


NSG_GET_LIMIT = 10
"""Up to this many NSGs are read with one GET each (side by side)."""
NSG_GROUP_LIST_LIMIT = 10
"""More NSGs in up to this many resource groups are read with one paged list per resource group,
side by side; in more resource groups, with one paged list per subscription."""
NSG_READ_CONCURRENCY = 8
"""NSG reads in flight at once while polling (ARM refills 25 reads/s per subscription)."""


def nsg_reads(nsg_ids):
    """The fewest, quickest reads that return every NSG of ``nsg_ids`` (ids, any case): a list of
    ``(action, (api) -> [NSG REST dicts])``. Few NSGs: one GET each. Else one list per resource
    group holding them (a polling round then costs one page's latency, not a subscription's worth
    of pages one after the other), or per subscription when they are spread over many groups."""
    unique = {}
    for nsg_id in nsg_ids:
        unique.setdefault(normalize_id(nsg_id), nsg_id)
    ids = list(unique.values())
    if len(ids) <= NSG_GET_LIMIT:
        return [("read network security group %s" % nsg_id, lambda api, nsg_id=nsg_id: [read_nsg(api, nsg_id)]) for nsg_id in ids]
    groups = {}
    for nsg_id in ids:
        parsed = parse_resource_id(nsg_id)
        groups.setdefault((parsed.subscription.lower(), parsed.resource_group.lower()), (parsed.subscription, parsed.resource_group))
    if len(groups) <= NSG_GROUP_LIST_LIMIT:
        return [
            (
                "list network security groups in resource group %s" % group,
                lambda api, sub=sub, group=group: list_kind(api, "network_security_groups", sub, resource_group=group),
            )
            for sub, group in groups.values()
        ]
    return [
        ("list network security groups in subscription %s" % sub, lambda api, sub=sub: list_kind(api, "network_security_groups", sub))
        for sub in {sub.lower(): sub for sub, _group in groups.values()}.values()
    ]


def read_nsgs(api, call, nsg_ids):
    """``{lower id: NSG REST dict}`` for ``nsg_ids`` (those that exist), read as :func:`nsg_reads`
    plans, up to :data:`NSG_READ_CONCURRENCY` at once. ``call(action, function)`` runs in the
    calling thread on each read's outcome in turn and turns its error into a module failure (or
    returns None to go on without that read)."""
    nsg_ids = list(nsg_ids)
    wanted = {normalize_id(nsg_id) for nsg_id in nsg_ids}
    found = {}
    for listed in _side_by_side(call, [(action, read, (api,)) for action, read in nsg_reads(nsg_ids)], NSG_READ_CONCURRENCY):
        for nsg in listed or ():
            key = normalize_id(nsg.get("id") or "")
            if key in wanted:
                found[key] = nsg
    return found


def _side_by_side(call, reads, workers):
    """The outcome of each ``(action, function, args)`` of ``reads``, in order, run up to ``workers``
    at once; ``call(action, future.result)`` turns each outcome in the calling thread (where an
    error ends the module, or is passed over). Not :func:`_parallel.side_by_side`, which serves
    writes: it starts nothing more after a failure, whereas whether a failed read matters is for
    ``call`` to judge."""
    if not reads:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(reads))) as pool:
        futures = [(action, pool.submit(function, *args)) for action, function, args in reads]
        for action, future in futures:
            yield call(action, future.result)


LIST_CONCURRENCY = 4
"""Lists read side by side: ARM answers each page after a few hundred milliseconds, so the kinds
are listed at once (at most this many: a few reads a second, far below ARM's 25 a second)."""


def read_inventory(api, call, kinds=CORE_KINDS, subscriptions=None, reused=None):
    """List every resource of ``kinds`` in each subscription (default: the API's): one paged list
    call per kind and subscription, up to :data:`LIST_CONCURRENCY` at once, merged into one
    :class:`Inventory` in a fixed order (ARM ids are unique across subscriptions). The kinds
    ``reused`` (an :class:`Inventory` from :func:`load_inventory`) holds are moved out of it
    instead of being listed (its lists are left empty: one reference to the items, so that
    :meth:`Inventory.release` frees them).

    ``call(action, function)`` runs an ARM call and turns errors into a module failure; it runs in
    the calling thread, on each list's outcome in turn.
    """
    subscriptions = list(subscriptions or [api.subscription_id])
    held = set(reused.kinds) & set(kinds) if reused is not None else set()
    merged = {kind: list(getattr(reused, kind)) if kind in held else [] for kind in kinds}
    if held:
        reused.release(*held)
    jobs = [(subscription, kind) for subscription in subscriptions for kind in kinds if kind not in held]
    if not jobs:
        return Inventory(**merged)
    where = {subscription: "" if len(subscriptions) == 1 else " in subscription %s" % subscription for subscription in subscriptions}
    reads = [(RAW_LIST_ACTIONS[kind] + where[subscription], list_kind, (api, kind, subscription)) for subscription, kind in jobs]
    for (_subscription, kind), listed in zip(jobs, _side_by_side(call, reads, LIST_CONCURRENCY), strict=True):
        merged[kind].extend(listed)
    return Inventory(**merged)


# -- handing the reads of one task to the next through a file, not Ansible variables ------------

INVENTORY_FILE_FORMAT = "jitaccess.azure/inventory/2"
INVENTORY_FILE_MAX_AGE = 3600
"""Seconds a saved inventory may be reused: it is meant for the tasks of one run."""
STABLE_KINDS = ("virtual_machines", "network_interfaces", "virtual_networks", "public_ip_addresses", "bastion_hosts")
"""What a JIT policy write or a JIT request does not change (NSGs and JIT policies it does)."""


def save_inventory(path, inventory, subscriptions, clock=time.time):
    """Write ``inventory`` (the lists of :func:`read_inventory`) to ``path``, owner-only (0600),
    atomically: a later task of the run reuses them instead of listing the fleet again.

    One JSON header line (format, time, subscriptions), then one line per item: its kind, a tab and
    the item as JSON. A reader parses only the kinds it wants, one item at a time (a 50,000-VM
    inventory is a quarter of a gigabyte of text: never held whole)."""
    header = {
        "format": INVENTORY_FILE_FORMAT,
        "saved_at": clock(),
        "subscriptions": sorted(str(s).lower() for s in subscriptions),
        "kinds": list(inventory.kinds),
    }

    def write(stream):
        stream.write(_ENCODE(header) + "\n")
        for kind in inventory.kinds:
            for item in getattr(inventory, kind):
                stream.write("%s\t%s\n" % (kind, _ENCODE(item)))

    _write_private(path, write)


def _write_json(stream, value, depth):
    """``value`` as JSON, the containers of its first ``depth`` levels written piece by piece and
    everything below with one C-accelerated ``encode`` each: ``json.dump`` encodes in pure Python
    (4x slower on a fleet's lists), and one ``json.dumps`` of them all would hold the whole text
    (tens of megabytes at 10,000 VMs) in memory at once."""
    if depth and isinstance(value, dict):
        stream.write("{")
        for index, (key, item) in enumerate(value.items()):
            stream.write("%s%s:" % ("," if index else "", _ENCODE(str(key))))
            _write_json(stream, item, depth - 1)
        stream.write("}")
    elif depth and isinstance(value, (list, tuple)):
        stream.write("[")
        for index, item in enumerate(value):
            if index:
                stream.write(",")
            _write_json(stream, item, depth - 1)
        stream.write("]")
    else:
        stream.write(_ENCODE(value))


def _write_private(path, write):
    """``write(stream)`` to ``path``, owner-only (0600), atomically (a reader never sees half a file)."""
    temporary = "%s.%d.tmp" % (path, os.getpid())
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        write(stream)
    os.replace(temporary, path)


def write_private_json(path, document):
    """Write ``document`` as JSON to ``path``, owner-only (0600), atomically."""
    _write_private(path, lambda stream: _write_json(stream, document, 3))  # document -> fact -> one list -> its items


_LOAD_BATCH = 500
"""Inventory lines parsed with one ``json.loads``: the decoder shares the key strings of the items
of one call (as it does for a listed page), and a batch stays small."""


def _items_by_kind(stream, kinds):
    """``(kind, [items])`` for the item lines of ``kinds`` in ``stream``, in batches; other kinds'
    lines are skipped unparsed."""
    kind_of_batch, batch = None, []
    for line in stream:
        kind, _tab, text = line.partition("\t")
        if kind not in kinds:
            continue
        if batch and (kind != kind_of_batch or len(batch) >= _LOAD_BATCH):
            yield kind_of_batch, json.loads("[%s]" % ",".join(batch))
            batch = []
        kind_of_batch = kind
        batch.append(text)
    if batch:
        yield kind_of_batch, json.loads("[%s]" % ",".join(batch))


def load_inventory(path, subscriptions, kinds, max_age=INVENTORY_FILE_MAX_AGE, clock=time.time):
    """``(Inventory with ``kinds`` from the file, None)``, or ``(None, why it cannot be used)``:
    missing or unreadable, another format, older than ``max_age`` seconds, or not covering every
    one of ``subscriptions``. Only the lines of ``kinds`` are parsed; NSGs share their default
    rules as when listed."""
    try:
        with open(path, encoding="utf-8") as stream:
            header = json.loads(stream.readline() or "null")
            if not isinstance(header, dict) or header.get("format") != INVENTORY_FILE_FORMAT:
                return None, "%s is not an inventory saved by nsg_jit_facts" % path
            age = clock() - float(header.get("saved_at") or 0)
            if age > max_age or age < -60:
                return None, "%s was saved %d s ago (reused for at most %d s)" % (path, age, max_age)
            missing = sorted({str(s).lower() for s in subscriptions} - set(header.get("subscriptions") or []))
            if missing:
                return None, "%s does not cover subscription(s) %s" % (path, ", ".join(missing))
            wanted = [kind for kind in header.get("kinds") or [] if kind in kinds and kind in Inventory.KINDS]
            lists = {kind: [] for kind in wanted}
            tidy = {kind: _slim(kind) for kind in wanted if kind == "network_security_groups"}
            chosen = {subscription.lower() for subscription in subscriptions}
            for kind, items in _items_by_kind(stream, lists):
                for item in items:
                    if _subscription_of(item) in chosen:
                        if kind in tidy:
                            tidy[kind](item)
                        lists[kind].append(item)
    except (OSError, ValueError, TypeError) as exc:
        return None, "cannot read %s (%s)" % (path, exc.__class__.__name__)
    return Inventory(**lists), None


FACTS_FILE_FORMAT = "jitaccess.azure/facts/1"
FLEET_SIZED_FACTS = ("virtual_machines", "policies", "stale_rules", "drift")
"""The members of the azure_jit fact that grow with the fleet: with nsg_jit_facts ``facts_file`` they
are written to the file only, and the task's result keeps the rest (summary, scope, plans)."""


def save_facts(path, facts):
    """Write the whole ``azure_jit`` fact to ``path`` (owner-only, atomic); return what the task's
    result keeps: every member but :data:`FLEET_SIZED_FACTS`, plus ``facts_file``."""
    write_private_json(path, {"format": FACTS_FILE_FORMAT, "azure_jit": facts})
    kept = {key: value for key, value in facts.items() if key not in FLEET_SIZED_FACTS}
    kept["facts_file"] = path
    return kept


def load_facts(path):
    """The ``azure_jit`` fact :func:`save_facts` wrote to ``path``; ``ValueError`` naming the
    problem when the file cannot be read or is something else."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except OSError as exc:
        raise ValueError("cannot read %s (%s)" % (path, exc.strerror or exc)) from None
    except ValueError:
        raise ValueError("%s is not JSON" % path) from None
    if not isinstance(document, dict) or document.get("format") != FACTS_FILE_FORMAT or not isinstance(document.get("azure_jit"), dict):
        raise ValueError("%s is not a facts file written by nsg_jit_facts" % path)
    return document["azure_jit"]


def _subscription_of(item):
    parts = str(item.get("id") or "").split("/")
    return parts[2].lower() if len(parts) > 2 else ""


def subscriptions_of(vm_ids, default_subscription=None):
    """The subscriptions VM ids live in, in first-seen order (case-insensitively unique); the
    default subscription when there is no id."""
    found = {}
    for vm_id in vm_ids:
        subscription = parse_resource_id(vm_id).subscription
        found.setdefault(subscription.lower(), subscription)
    if not found and default_subscription:
        return [default_subscription]
    return list(found.values())


def not_found_message(vm_ids):
    """``virtual machine(s) not found in subscription S: ids`` (every subscription the ids name)."""
    subscriptions = subscriptions_of(vm_ids)
    where = "subscription %s" % subscriptions[0] if len(subscriptions) == 1 else "subscriptions %s" % ", ".join(subscriptions)
    return "virtual machine(s) not found in %s: %s" % (where, ", ".join(vm_ids))


def power_state_of(vm):
    statuses = (properties_of(vm).get("instanceView") or {}).get("statuses") or []
    for status in statuses:
        code = status.get("code") or ""
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1]
    return None


def os_type_of(vm):
    os_disk = (properties_of(vm).get("storageProfile") or {}).get("osDisk") or {}
    return os_disk.get("osType")


def _subnet_index(virtual_networks):
    """subnet id -> (subnet NSG id, VNet address prefixes)."""
    index = {}
    for vnet in virtual_networks:
        spaces = list((properties_of(vnet).get("addressSpace") or {}).get("addressPrefixes") or [])
        for subnet in properties_of(vnet).get("subnets") or []:
            index[normalize_id(subnet.get("id"))] = (_ref_id(properties_of(subnet).get("networkSecurityGroup")), spaces)
    return index


def _nic_record(nic, subnets, public_ips):
    props = properties_of(nic)
    configs = props.get("ipConfigurations") or []
    primary = next((c for c in configs if properties_of(c).get("primary")), configs[0] if configs else {})
    config_props = properties_of(primary)
    subnet_id = _ref_id(config_props.get("subnet"))
    subnet_nsg, spaces = subnets.get(normalize_id(subnet_id), (None, []))
    public_ip_id = _ref_id(config_props.get("publicIPAddress"))
    public_ip = public_ips.get(normalize_id(public_ip_id)) if public_ip_id else None
    return {
        "id": nic.get("id"),
        "name": nic.get("name"),
        "private_ip": config_props.get("privateIPAddress"),
        "subnet_id": subnet_id,
        "nic_nsg_id": _ref_id(props.get("networkSecurityGroup")),
        "subnet_nsg_id": subnet_nsg,
        "public_ip_id": public_ip_id,
        "public_ip": properties_of(public_ip).get("ipAddress") if public_ip else None,
        "public_ip_sku": ((public_ip.get("sku") or {}).get("name") if isinstance(public_ip, dict) else None) if public_ip else None,
        "vnet_address_prefixes": spaces,
    }


def build_topology(inventory):
    """Return ``{vm id (lower-cased): record}``; records are JSON-ready dicts.

    A record has id, name, resource_group, location, os_type, power_state, tags, ``nics`` (each
    with private IP, NIC NSG, subnet NSG and public IP), ``nsg_ids`` (every NSG on the VM's
    path, subnet NSG first, without duplicates) and ``unsupported_reason`` (None when JIT can
    protect it).
    """
    subnets = _subnet_index(inventory.virtual_networks)
    public_ips = {normalize_id(ip.get("id")): ip for ip in inventory.public_ip_addresses}
    nics = {normalize_id(nic.get("id")): nic for nic in inventory.network_interfaces}
    topology = {}
    for vm in inventory.virtual_machines:
        props = properties_of(vm)
        nic_refs = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        records = [_nic_record(nics[normalize_id(ref.get("id"))], subnets, public_ips) for ref in nic_refs if normalize_id(ref.get("id")) in nics]
        nsg_ids = []
        for record in records:
            for nsg_id in (record["subnet_nsg_id"], record["nic_nsg_id"]):
                if nsg_id and normalize_id(nsg_id) not in {normalize_id(known) for known in nsg_ids}:
                    nsg_ids.append(nsg_id)
        reason = None
        if not records:
            reason = UNSUPPORTED_NO_NIC
        elif not nsg_ids:
            reason = UNSUPPORTED_NO_NSG
        topology[normalize_id(vm.get("id"))] = {
            "id": vm.get("id"),
            "name": vm.get("name"),
            "subscription_id": parse_resource_id(vm.get("id")).subscription,
            "resource_group": resource_group_of(vm.get("id")),
            "location": normalize_location(vm.get("location", "")),
            "os_type": os_type_of(vm),
            "power_state": power_state_of(vm),
            "tags": vm.get("tags") or {},
            "nics": records,
            "nsg_ids": nsg_ids,
            "unsupported_reason": reason,
        }
    return topology


def resolve_vms(references, topology, subscription):
    """Map module ``virtual_machines`` entries to topology records, in input order.

    Raises :class:`JitValidationError` naming every unknown VM at once, and rejects duplicates.
    """
    resolved = []
    seen = {}
    unknown = []
    for reference in references:
        vm_id = vm_id_from_reference(reference, subscription)
        key = normalize_id(vm_id)
        if key in seen:
            raise JitValidationError("virtual machine %s is listed twice in virtual_machines" % vm_id)
        seen[key] = True
        record = topology.get(key)
        if record is None:
            unknown.append(vm_id)
        else:
            resolved.append((reference, record))
    if unknown:
        raise JitValidationError(not_found_message(unknown))
    return resolved


def resolve_bastions(api, call, choice, records, inventory):
    """``{vm id (lower): _bastion.Bastion}`` for the ``bastion`` option (``auto`` or a Bastion
    host id; ``None``: ``{}``) and VM ``records``: one Bastion host list per subscription of the
    VMs, of the named host and of the VNets peered with the VMs' VNets; the VNets of those further
    subscriptions are listed too (``inventory`` holds those of the VMs' subscriptions). Raises
    :class:`JitValidationError`."""
    if not choice or not records:
        return {}
    subscriptions = subscriptions_of([record["id"] for record in records], api.subscription_id)
    networks = _bastion.index_networks(inventory.virtual_networks)
    wanted = list(subscriptions)
    if choice != _bastion.AUTO:
        wanted.append(_bastion.subscription_of(choice))
    wanted += _bastion.remote_subscriptions(networks, [vnet for record in records for vnet in _bastion.vm_vnet_ids(record)])
    wanted = list({subscription.lower(): subscription for subscription in wanted}.values())
    extra = [subscription for subscription in wanted if subscription.lower() not in {known.lower() for known in subscriptions}]
    if extra:
        networks.update(_bastion.index_networks(read_inventory(api, call, kinds=("virtual_networks",), subscriptions=extra).virtual_networks))
    hosts = read_inventory(api, call, kinds=("bastion_hosts",), subscriptions=wanted).bastion_hosts
    return _bastion.resolve(choice, records, networks, _bastion.index_bastions(hosts, networks))


def vms_and_sources(api, call, references, topology, inventory, *, bastion=None):
    """``(resolve_vms(references, topology, api.subscription_id), sources)``: with jit_request's
    ``bastion`` option, ``sources`` maps each VM id (lower) to the one request source
    (:func:`_bastion.request_source`) of the Bastion :func:`resolve_bastions` picks for it."""
    resolved = resolve_vms(references, topology, api.subscription_id)
    choice = bastion_reference(bastion, api.subscription_id)
    hosts = resolve_bastions(api, call, choice, [record for _reference, record in resolved], inventory)
    return resolved, {vm_key: _bastion.request_source(host) for vm_key, host in hosts.items()}


def nsgs_by_id(inventory):
    """NSG id (lower-cased) -> REST dict, for evaluation and rule lookups."""
    return {normalize_id(nsg.get("id")): nsg for nsg in inventory.network_security_groups}
