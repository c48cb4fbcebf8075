"""The in-memory resource model, built from a seed (see seed.py).

Every resource is indexed by its lower-cased ARM id (ARM ids are case-insensitive). Resources
keep the casing they were created with. A single re-entrant lock (``App.lock`` in server.py) guards
the whole model: handlers, the JIT apply timers and the data-plane gates all take it.
"""

import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

JIT_RULE_PREFIXES = ("MicrosoftDefenderForCloud-JITRule", "SecurityCenter-JITRule")


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "armsim:" + ":".join(p.lower() for p in parts)))


def rg_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def res_id(sub: str, rg: str, rtype: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{rtype}/{name}"


def id_parts(resource_id: str) -> dict[str, str]:
    """Split an ARM id into {'subscriptions': s, 'resourcegroups': rg, <type>: name, ...} (keys lower-cased)."""
    segs = [s for s in resource_id.strip("/").split("/") if s]
    out: dict[str, str] = {}
    i = 0
    while i + 1 < len(segs):
        key = segs[i].lower()
        if key == "providers":
            out["provider"] = segs[i + 1]
        else:
            out[key] = segs[i + 1]
        i += 2
    return out


def is_jit_rule_name(name: str) -> bool:
    return any(name.lower().startswith(p.lower()) for p in JIT_RULE_PREFIXES)


@dataclass
class Principal:
    client_id: str
    client_secret: str | None
    name: str
    object_id: str
    tenant_id: str
    role: str = "Owner"
    certificate_pem: str | None = None  # certificate credential (public certificate, PEM)
    actions: tuple[str, ...] | None = None  # RBAC allow-list (``*`` wildcards); None: role decides
    username: str | None = None  # a user (signs in with username + password), not an application
    password: str | None = None


@dataclass
class ResourceGroup:
    id: str
    name: str
    location: str
    tags: dict = field(default_factory=dict)


@dataclass
class Rule:
    """A security rule. ``props`` holds the ARM ``properties`` (without provisioningState)."""

    name: str
    props: dict

    @property
    def priority(self) -> int:
        return int(self.props["priority"])

    @property
    def direction(self) -> str:
        return self.props["direction"]

    @property
    def access(self) -> str:
        return self.props["access"]

    def _plural(self, singular: str) -> list[str]:
        if self.props.get(singular) not in (None, ""):
            return [str(self.props[singular])]
        return [str(v) for v in self.props.get(singular + "es" if singular.endswith("Prefix") else singular + "s") or []]

    @property
    def source_prefixes(self) -> list[str]:
        return self._plural("sourceAddressPrefix")

    @property
    def destination_prefixes(self) -> list[str]:
        return self._plural("destinationAddressPrefix")

    @property
    def source_ports(self) -> list[str]:
        return self._plural("sourcePortRange")

    @property
    def destination_ports(self) -> list[str]:
        return self._plural("destinationPortRange")


@dataclass
class Nsg:
    id: str
    name: str
    resource_group: str
    location: str
    tags: dict
    etag: str
    resource_guid: str
    rules: dict[str, Rule] = field(default_factory=dict)  # lower name -> Rule, insertion ordered
    nic_ids: list[str] = field(default_factory=list)
    subnet_ids: list[str] = field(default_factory=list)
    json_cache: tuple[str, bytes] | None = None  # (etag, rendered JSON)

    def touch(self) -> None:
        """Every change to the NSG or one of its rules gets a new etag."""
        self.etag = new_etag()
        self.json_cache = None

    def inbound_priorities(self) -> set[int]:
        return {r.priority for r in self.rules.values() if r.direction.lower() == "inbound"}


@dataclass
class Subnet:
    id: str
    name: str
    prefix: str
    nsg_id: str | None
    ip_configuration_ids: list[str] = field(default_factory=list)


@dataclass
class Vnet:
    id: str
    name: str
    resource_group: str
    location: str
    tags: dict
    address_space: list[str]
    subnets: dict[str, Subnet]
    etag: str
    resource_guid: str
    json_cache: bytes | None = None
    peerings: dict[str, "Peering"] = field(default_factory=dict)  # lower name -> Peering, insertion ordered


@dataclass
class Peering:
    """A virtualNetworkPeerings child of a VNet. ``props`` holds the settable ARM properties;
    ``state`` and ``remote_space`` are derived from the remote VNet by :func:`sync_peerings`."""

    id: str
    name: str
    remote_vnet_id: str
    props: dict
    etag: str
    resource_guid: str
    state: str = "Initiated"  # Connected once the remote VNet peers back
    remote_space: list[str] = field(default_factory=list)


@dataclass
class BastionHost:
    id: str
    name: str
    resource_group: str
    location: str
    tags: dict
    sku: str
    subnet_id: str  # the AzureBastionSubnet its (one) IP configuration sits in
    public_ip_id: str | None
    ip_configuration_name: str
    etag: str
    resource_guid: str


BASTION_SUBNET_NAME = "AzureBastionSubnet"


def sync_peerings(vnets: list["Vnet"], lookup: Any) -> None:
    """Recompute every peering's ``state`` (Connected when the remote VNet has a peering back to
    this one, else Initiated, or Disconnected once it was Connected) and ``remote_space``; ``lookup(vnet id)`` finds a VNet in any
    subscription. Drops the JSON cache of every VNet whose peerings changed."""
    for vnet in vnets:
        changed = False
        for peering in vnet.peerings.values():
            remote = lookup(peering.remote_vnet_id)
            back = remote is not None and any(p.remote_vnet_id.lower() == vnet.id.lower() for p in remote.peerings.values())
            # Azure: a Connected peering whose remote side is deleted stays Disconnected
            state = "Connected" if back else "Disconnected" if peering.state in ("Connected", "Disconnected") else "Initiated"
            space = list(remote.address_space) if remote is not None else peering.remote_space
            if (state, space) != (peering.state, peering.remote_space):
                peering.state, peering.remote_space, changed = state, space, True
        if changed:
            vnet.json_cache = None


@dataclass
class PublicIp:
    id: str
    name: str
    resource_group: str
    location: str
    ip_address: str
    ip_configuration_id: str | None
    etag: str
    resource_guid: str
    sku: str = "Standard"  # Standard: inbound closed unless an NSG allows it; Basic: open (retired)
    json_cache: bytes | None = None


@dataclass
class Nic:
    id: str
    name: str
    resource_group: str
    location: str
    private_ip: str
    subnet_id: str
    nsg_id: str | None
    public_ip_id: str | None
    vm_id: str
    primary: bool
    mac: str
    etag: str
    resource_guid: str
    json_cache: bytes | None = None

    @property
    def ip_configuration_id(self) -> str:
        return self.id + "/ipConfigurations/ipconfig1"


@dataclass
class Gate:
    port: int
    backend: str | None  # "host:port", or None for the built-in banner


@dataclass
class Vm:
    id: str
    name: str
    resource_group: str
    location: str
    os_type: str
    power_state: str
    vm_size: str
    tags: dict
    vm_uuid: str
    nic_ids: list[str]
    gates: list[Gate]
    json_cache: dict[str, bytes] = field(default_factory=dict)


# --- JIT ------------------------------------------------------------------------------------


@dataclass
class JitRequestPort:
    number: int
    end_time: float
    status: str = "Initiated"
    status_reason: str = "UserRequested"
    source: str | None = None  # allowedSourceAddressPrefix
    sources: list[str] | None = None  # allowedSourceAddressPrefixes
    # internal bookkeeping, never rendered:
    allow_rules: list[tuple[str, str]] = field(default_factory=list)  # (nsg key, rule lower name)
    superseded: list["JitRequestPort"] = field(default_factory=list)
    applied: bool = False

    def source_list(self) -> list[str]:
        return list(self.sources) if self.sources else [self.source or "*"]


@dataclass
class JitRequestVm:
    id: str
    ports: list[JitRequestPort]


@dataclass
class JitRequest:
    start_time: float
    requestor: str
    justification: str | None
    virtual_machines: list[JitRequestVm]


@dataclass
class JitPolicy:
    id: str
    name: str
    resource_group: str
    location: str
    kind: str
    virtual_machines: list[dict[str, Any]]  # ARM JSON shape, normalised
    requests: list[JitRequest] = field(default_factory=list)


# --- state ------------------------------------------------------------------------------------


class State:
    """All resources of one subscription (plus the principals of its tenant).

    Not thread-safe by itself: the server guards it with ``App.lock``.
    """

    def __init__(self) -> None:
        self.subscription_id = ""
        self.subscription_name = "armsim"
        self.tenant_id = ""
        self.principals: dict[str, Principal] = {}
        self.tenants: set[str] = set()
        self.resource_groups: dict[str, ResourceGroup] = {}
        self.nsgs: dict[str, Nsg] = {}
        self.vnets: dict[str, Vnet] = {}
        self.nics: dict[str, Nic] = {}
        self.public_ips: dict[str, PublicIp] = {}
        self.bastions: dict[str, BastionHost] = {}
        self.vms: dict[str, Vm] = {}
        self.policies: dict[str, JitPolicy] = {}
        self.vm_policy: dict[str, str] = {}  # lower VM id -> lower id of the policy that has it
        self.next_expiry: float | None = None  # earliest endTime of an active JIT port
        # Microsoft.Security/pricings/VirtualMachines: Defender for Servers (JIT needs Standard + P2)
        self.servers_plan: dict[str, str] = {"pricingTier": "Standard", "subPlan": "P2"}
        self.deny_placement = "top"  # jit.DENY_PLACEMENTS (admin /config)

    # lookups -----------------------------------------------------------------------------------
    def rg(self, name: str) -> ResourceGroup | None:
        return self.resource_groups.get(name.lower())

    def subnet(self, subnet_id: str) -> Subnet | None:
        vnet_id, _, name = subnet_id.lower().rpartition("/subnets/")
        vnet = self.vnets.get(vnet_id)
        return vnet.subnets.get(name) if vnet else None

    def vnet_of_subnet(self, subnet_id: str) -> Vnet | None:
        return self.vnets.get(subnet_id.lower().rpartition("/subnets/")[0])

    def nsg_path(self, vm: Vm) -> list[tuple[Nsg, list[str]]]:
        """NSGs on the VM's inbound path with the private IPs each one covers.

        Order: for each NIC, the subnet NSG then the NIC NSG (the order inbound traffic meets them).
        """
        result: dict[str, tuple[Nsg, list[str]]] = {}
        for nic_id in vm.nic_ids:
            nic = self.nics.get(nic_id.lower())
            if not nic:
                continue
            subnet = self.subnet(nic.subnet_id)
            for nsg_id in (subnet.nsg_id if subnet else None, nic.nsg_id):
                nsg = self.nsgs.get(nsg_id.lower()) if nsg_id else None
                if nsg is None:
                    continue
                entry = result.setdefault(nsg.id.lower(), (nsg, []))
                if nic.private_ip not in entry[1]:
                    entry[1].append(nic.private_ip)
        return list(result.values())

    def vm_address_spaces(self, vm: Vm) -> list[ipaddress.IPv4Network]:
        nets = []
        for nic_id in vm.nic_ids:
            nic = self.nics.get(nic_id.lower())
            vnet = self.vnet_of_subnet(nic.subnet_id) if nic else None
            for prefix in vnet.address_space if vnet else []:
                nets.append(ipaddress.ip_network(prefix, strict=False))
        return nets
