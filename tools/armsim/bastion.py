"""Microsoft.Network Bastion hosts and virtual network peerings (read/write, long-running operations).

What the collection's ``bastion`` option resolves: a Bastion host sits in the subnet named exactly
``AzureBastionSubnet`` of a VNet, and reaches VMs of its own VNet and of VNets peered with it. A
peering is ``Connected`` only when the remote VNet peers back (else ``Initiated``; ``Disconnected``
once the remote side is deleted). See README.md, "Bastion and peering".
"""

import ipaddress
from typing import Any

from armsim import model, schema
from armsim.arm import NET, RG, SUB, ArmError, Ctx, Response, dumps, json_response, not_found, rg_not_found
from armsim.model import BastionHost, Peering, Vnet

BASTION_TYPE = "Microsoft.Network/bastionHosts"
VNET_TYPE = "Microsoft.Network/virtualNetworks"
PEERING_TYPE = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"
SKUS = ("Developer", "Basic", "Standard", "Premium")
PEERING_FLAGS = ("allowVirtualNetworkAccess", "allowForwardedTraffic", "allowGatewayTransit", "useRemoteGateways", "doNotVerifyRemoteGateways")
PEERING_DEFAULTS = {"allowVirtualNetworkAccess": True, "allowForwardedTraffic": False, "allowGatewayTransit": False, "useRemoteGateways": False}


# --- rendering --------------------------------------------------------------------------------


def bastion_json(host: BastionHost, provisioning: str = "Succeeded") -> dict:
    ipconfig: dict[str, Any] = {"provisioningState": provisioning, "privateIPAllocationMethod": "Dynamic", "subnet": {"id": host.subnet_id}}
    if host.public_ip_id:
        ipconfig["publicIPAddress"] = {"id": host.public_ip_id}
    return {
        "name": host.name,
        "id": host.id,
        "etag": host.etag,
        "type": BASTION_TYPE,
        "location": host.location,
        "tags": host.tags,
        "sku": {"name": host.sku},
        "properties": {
            "provisioningState": provisioning,
            "dnsName": f"bst-{host.resource_guid}.bastion.azure.com",
            "scaleUnits": 2,
            "ipConfigurations": [
                {
                    "name": host.ip_configuration_name,
                    "id": f"{host.id}/bastionHostIpConfigurations/{host.ip_configuration_name}",
                    "etag": host.etag,
                    "type": "Microsoft.Network/bastionHosts/bastionHostIpConfigurations",
                    "properties": ipconfig,
                }
            ],
        },
    }


def peering_json(peering: Peering, provisioning: str = "Succeeded") -> dict:
    props: dict[str, Any] = {"provisioningState": provisioning, "resourceGuid": peering.resource_guid, "peeringState": peering.state}
    props["peeringSyncLevel"] = "FullyInSync" if peering.state == "Connected" else "RemoteNotInSync"
    props.update(PEERING_DEFAULTS)
    props.update(peering.props)
    props["remoteVirtualNetwork"] = {"id": peering.remote_vnet_id}
    props["remoteAddressSpace"] = {"addressPrefixes": list(peering.remote_space)}
    props["remoteVirtualNetworkAddressSpace"] = {"addressPrefixes": list(peering.remote_space)}
    return {"name": peering.name, "id": peering.id, "etag": peering.etag, "type": PEERING_TYPE, "properties": props}


# --- helpers ----------------------------------------------------------------------------------


def _require_rg(ctx: Ctx, rg: str) -> model.ResourceGroup:
    group = ctx.state.rg(rg)
    if group is None:
        raise rg_not_found(rg)
    return group


def _bastion_id(ctx: Ctx, rg: str, name: str) -> str:
    return model.res_id(ctx.state.subscription_id, rg, BASTION_TYPE, name)


def _get_bastion(ctx: Ctx, rg: str, name: str) -> BastionHost:
    _require_rg(ctx, rg)
    host = ctx.state.bastions.get(_bastion_id(ctx, rg, name).lower())
    if host is None:
        raise not_found(BASTION_TYPE, name, rg)
    return host


def _get_vnet(ctx: Ctx, rg: str, name: str) -> Vnet:
    _require_rg(ctx, rg)
    vnet = ctx.state.vnets.get(model.res_id(ctx.state.subscription_id, rg, VNET_TYPE, name).lower())
    if vnet is None:
        raise not_found(VNET_TYPE, name, rg)
    return vnet


def lookup_vnet(app: Any, vnet_id: str) -> Vnet | None:
    """A VNet of any subscription armsim serves, by id."""
    return app.state_of(vnet_id).vnets.get(vnet_id.lower())


def sync_all(app: Any) -> None:
    for state in app.subscriptions.values():
        model.sync_peerings(list(state.vnets.values()), lambda vnet_id: lookup_vnet(app, vnet_id))


def _ref(value: Any, what: str) -> str:
    ref = value.get("id") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref.startswith("/"):
        raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request. {what} must be an object with the id of a resource.")
    return ref


def check_bastion_subnet(state: model.State, bastion_id: str, subnet_id: str, location: str) -> model.Subnet:
    """The subnet a Bastion host's IP configuration names: it must exist, in the host's region,
    and be named exactly ``AzureBastionSubnet`` (the errors Azure gives)."""
    subnet = state.subnet(subnet_id)
    vnet = state.vnet_of_subnet(subnet_id)
    if subnet is None or vnet is None or vnet.location.lower() != location.lower():
        raise ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {subnet_id} referenced by resource {bastion_id} was not found. "
            "Please make sure that the referenced resource exists, and that both resources are in the same region.",
        )
    if subnet.name != model.BASTION_SUBNET_NAME:
        raise ArmError(
            400,
            "SubnetNameMustBeAzureBastionSubnet",
            f"Subnet name {subnet.id} is invalid for Azure Bastion. Azure Bastion can only be created in subnet with name '{model.BASTION_SUBNET_NAME}'.",
        )
    return subnet


# --- Bastion host handlers --------------------------------------------------------------------


def list_all_bastions(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(ctx.state.bastions.values(), lambda b: dumps(bastion_json(b)))


def list_bastions(ctx: Ctx, rg: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    return ctx.paged([b for b in ctx.state.bastions.values() if b.resource_group.lower() == rg.lower()], lambda b: dumps(bastion_json(b)))


def get_bastion(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    return json_response(bastion_json(_get_bastion(ctx, rg, name)))


def put_bastion(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    group = _require_rg(ctx, rg)
    state = ctx.state
    host_id = _bastion_id(ctx, group.name, name)
    existing = state.bastions.get(host_id.lower())
    body = schema.network_body(ctx.req.json(), schema.BASTION_HOST)
    location = str(body.get("location") or (existing.location if existing else "")).replace(" ", "").lower()
    if not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    sku = str((body.get("sku") or {}).get("name") or "Basic")
    if sku not in SKUS:
        raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request. Bastion SKU {sku} is not valid: allowed {', '.join(SKUS)}.")
    configs = (body.get("properties") or {}).get("ipConfigurations") or []
    if len(configs) != 1 or not isinstance(configs[0], dict):
        raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request. Bastion host {name} needs exactly one IP configuration, got {len(configs)}.")
    config_props = configs[0].get("properties") or {}
    subnet = check_bastion_subnet(state, host_id, _ref(config_props.get("subnet"), "ipConfigurations[0].properties.subnet"), location)
    public_ip = config_props.get("publicIPAddress")
    host = BastionHost(
        id=existing.id if existing else host_id,
        name=existing.name if existing else name,
        resource_group=group.name,
        location=location,
        tags=dict(body.get("tags") or {}),
        sku=sku,
        subnet_id=subnet.id,
        public_ip_id=_ref(public_ip, "ipConfigurations[0].properties.publicIPAddress") if public_ip else None,
        ip_configuration_name=str(configs[0].get("name") or "IpConf"),
        etag=model.new_etag(),
        resource_guid=existing.resource_guid if existing else model.stable_uuid(host_id),
    )
    headers = ctx.start_lro(location)
    if not ctx.lro_fault:
        _detach(state, existing)
        state.bastions[host_id.lower()] = host
        config_id = f"{host.id}/bastionHostIpConfigurations/{host.ip_configuration_name}"
        subnet.ip_configuration_ids.append(config_id)
        _touch_vnet_of(state, subnet.id)
    return json_response(bastion_json(host, "Updating"), 200 if existing else 201, headers)


def _detach(state: model.State, host: BastionHost | None) -> None:
    """Take a Bastion host's IP configuration off its subnet (the subnet lists its users)."""
    if host is None:
        return
    subnet = state.subnet(host.subnet_id)
    if subnet is not None:
        subnet.ip_configuration_ids = [i for i in subnet.ip_configuration_ids if not i.lower().startswith(host.id.lower() + "/")]
        _touch_vnet_of(state, subnet.id)


def _touch_vnet_of(state: model.State, subnet_id: str) -> None:
    vnet = state.vnet_of_subnet(subnet_id)
    if vnet is not None:
        vnet.json_cache = None


def delete_bastion(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    host = ctx.state.bastions.get(_bastion_id(ctx, rg, name).lower())
    if host is None:
        return Response(204)
    headers = ctx.start_lro(host.location, delete=True)
    if not ctx.lro_fault:
        _detach(ctx.state, host)
        del ctx.state.bastions[host.id.lower()]
    return Response(202, b"", headers)


# --- peering handlers -------------------------------------------------------------------------


def list_peerings(ctx: Ctx, rg: str, vnet: str, **_: str) -> Response:
    target = _get_vnet(ctx, rg, vnet)
    return ctx.paged(target.peerings.values(), lambda p: dumps(peering_json(p)))


def get_peering(ctx: Ctx, rg: str, vnet: str, peering: str, **_: str) -> Response:
    target = _get_vnet(ctx, rg, vnet)
    found = target.peerings.get(peering.lower())
    if found is None:
        raise ArmError(404, "NotFound", f"Resource {target.id}/virtualNetworkPeerings/{peering} not found.")
    return json_response(peering_json(found))


def _overlap(first: list[str], second: list[str]) -> bool:
    nets = [ipaddress.ip_network(p, strict=False) for p in first]
    return any(a.overlaps(ipaddress.ip_network(b, strict=False)) for a in nets for b in second)


def put_peering(ctx: Ctx, rg: str, vnet: str, peering: str, **_: str) -> Response:
    target = _get_vnet(ctx, rg, vnet)
    existing = target.peerings.get(peering.lower())
    body = schema.network_body(ctx.req.json(), schema.VIRTUAL_NETWORK_PEERING)
    props = body.get("properties") or {}
    remote_id = _ref(props.get("remoteVirtualNetwork"), "properties.remoteVirtualNetwork")
    peering_id = f"{target.id}/virtualNetworkPeerings/{existing.name if existing else peering}"
    remote = lookup_vnet(ctx.app, remote_id)
    if remote is None:
        raise ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {remote_id} referenced by resource {peering_id} was not found. Please make sure that the referenced resource exists.",
        )
    if remote.id.lower() == target.id.lower():
        raise ArmError(400, "CannotPeerVirtualNetworkWithItself", f"Virtual network {target.id} cannot be peered with itself.")
    if existing and existing.remote_vnet_id.lower() != remote.id.lower():
        raise ArmError(400, "CannotChangeRemoteVirtualNetwork", f"Peering {peering_id} cannot change its remote virtual network.")
    if _overlap(target.address_space, remote.address_space):
        raise ArmError(
            400,
            "VnetAddressSpacesOverlap",
            f"Cannot create or update peering {peering_id}. Virtual networks {target.id} and {remote.id} have overlapping address spaces.",
        )
    new = Peering(
        id=peering_id,
        name=existing.name if existing else peering,
        remote_vnet_id=remote.id,
        props={key: bool(props[key]) for key in PEERING_FLAGS if props.get(key) is not None},
        etag=model.new_etag(),
        resource_guid=existing.resource_guid if existing else model.stable_uuid(peering_id),
        state=existing.state if existing else "Initiated",
        remote_space=list(remote.address_space),
    )
    headers = ctx.start_lro(target.location)
    if not ctx.lro_fault:
        target.peerings[new.name.lower()] = new
        target.json_cache = remote.json_cache = None
        sync_all(ctx.app)
    return json_response(peering_json(new, "Updating"), 200 if existing else 201, headers)


def delete_peering(ctx: Ctx, rg: str, vnet: str, peering: str, **_: str) -> Response:
    target = _get_vnet(ctx, rg, vnet)
    found = target.peerings.get(peering.lower())
    if found is None:
        return Response(204)
    headers = ctx.start_lro(target.location, delete=True)
    if not ctx.lro_fault:
        del target.peerings[peering.lower()]
        target.json_cache = None
        sync_all(ctx.app)
    return Response(202, b"", headers)


PEERINGS = RG + NET + r"/virtualNetworks/(?P<vnet>[^/]+)/virtualNetworkPeerings"

ROUTES = [
    ("GET", SUB + NET + r"/bastionHosts$", list_all_bastions),
    ("GET", RG + NET + r"/bastionHosts$", list_bastions),
    ("GET", RG + NET + r"/bastionHosts/(?P<name>[^/]+)$", get_bastion),
    ("PUT", RG + NET + r"/bastionHosts/(?P<name>[^/]+)$", put_bastion),
    ("DELETE", RG + NET + r"/bastionHosts/(?P<name>[^/]+)$", delete_bastion),
    ("GET", PEERINGS + "$", list_peerings),
    ("GET", PEERINGS + r"/(?P<peering>[^/]+)$", get_peering),
    ("PUT", PEERINGS + r"/(?P<peering>[^/]+)$", put_peering),
    ("DELETE", PEERINGS + r"/(?P<peering>[^/]+)$", delete_peering),
]
