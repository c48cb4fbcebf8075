"""Microsoft.Network: NSGs and security rules (read/write, long-running operations), NICs, VNets,
subnets and public IPs (read-only). Bastion hosts and VNet peerings: bastion.py."""

import ipaddress
import re
from typing import Any

from armsim import bastion, model, nsgeval, schema
from armsim.arm import NET, RG, SUB, ArmError, Ctx, Response, dumps, json_response, not_found, rg_not_found
from armsim.model import Nsg, Rule

NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
PROTOCOLS = {p.lower(): p for p in ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")}
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
_TAG_RE = re.compile(r"^[A-Z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)?$")
_PAIRS = [
    ("sourcePortRange", "sourcePortRanges"),
    ("destinationPortRange", "destinationPortRanges"),
    ("sourceAddressPrefix", "sourceAddressPrefixes"),
    ("destinationAddressPrefix", "destinationAddressPrefixes"),
]
READONLY_RULE_PROPS = {"provisioningState"}

# --- validation -------------------------------------------------------------------------------


def _valid_port_range(value: str) -> bool:
    value = value.strip()
    if value == "*":
        return True
    lo, sep, hi = value.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        return False
    return 0 <= int(lo) <= int(hi or lo) <= 65535


def _valid_prefix(value: str) -> bool:
    value = value.strip()
    if value == "*":
        return True
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except ValueError:
        return bool(_TAG_RE.match(value)) and value.lower() != "any"


def validate_rule_props(name: str, props: Any) -> dict:
    """Validate securityRule properties the way the Network RP does; return them normalised."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end "
            "with a word character or with '_'. The name may contain word characters or '.', '-', '_'.",
        )
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: security rule {name} has no properties.")
    out = {k: v for k, v in props.items() if k not in READONLY_RULE_PROPS and v is not None}
    protocol = str(out.get("protocol", ""))
    if protocol.lower() not in PROTOCOLS:
        raise ArmError(
            400,
            "SecurityRuleInvalidProtocol",
            f"Security rule {name} has invalid Protocol. Value provided: {protocol}. Allowed values: Tcp, Udp, Icmp, Esp, Ah, *.",
        )
    out["protocol"] = PROTOCOLS[protocol.lower()]
    for key, allowed, code in (
        ("access", ("Allow", "Deny"), "SecurityRuleInvalidAccess"),
        ("direction", ("Inbound", "Outbound"), "SecurityRuleInvalidDirection"),
    ):
        value = str(out.get(key, ""))
        match = [a for a in allowed if a.lower() == value.lower()]
        if not match:
            raise ArmError(400, code, f"Security rule {name} has invalid {key.capitalize()}. Value provided: {value}. Allowed values: {', '.join(allowed)}.")
        out[key] = match[0]
    priority = out.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 100 <= priority <= 4096:
        raise ArmError(400, "SecurityRuleInvalidPriority", f"Security rule has invalid Priority. Value provided: {priority} Allowed range 100-4096.")
    description = out.get("description")
    if description is not None and len(str(description)) > 140:
        raise ArmError(
            400,
            "SecurityRuleDescriptionTooLong",
            f"Security rule {name} has a description of {len(str(description))} characters. The maximum length is 140 characters.",
        )
    for singular, plural in _PAIRS:
        one = out.get(singular)
        many = out.get(plural) or []
        if not isinstance(many, list):
            raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: {plural} must be an array.")
        has_asg = singular.endswith("AddressPrefix") and out.get(singular.replace("AddressPrefix", "ApplicationSecurityGroups"))
        if one not in (None, "") and many:
            raise ArmError(
                400,
                "SecurityRuleParameterContainsMultipleValues",
                f"Security rule {name} specifies both {singular} and {plural}. Only one of them may be given.",
            )
        if one in (None, "") and not many and not has_asg:
            kind = "Port range" if "Port" in singular else "Address prefix"
            raise ArmError(
                400, f"SecurityRuleInvalid{kind.replace(' ', '')}", f"Security rule {name} has invalid {kind}. Value provided: (empty). {singular} is required."
            )
        values = [str(one)] if one not in (None, "") else [str(v) for v in many]
        for v in values:
            if "Port" in singular and not _valid_port_range(v):
                raise ArmError(
                    400,
                    "SecurityRuleInvalidPortRange",
                    f"Security rule has invalid Port range. Value provided: {v}. "
                    "Value should be an integer OR integer range with '-' delimiter. Valid range 0-65535.",
                )
            if "Address" in singular and not _valid_prefix(v):
                raise ArmError(400, "SecurityRuleInvalidAddressPrefix", f"Security rule has invalid Address prefix. Value provided: {v}")
        if one in (None, ""):
            out.pop(singular, None)
        else:
            out[singular] = str(one)
            out.pop(plural, None)
        if many:
            out[plural] = [str(v) for v in many]
    return out


def check_priority_conflict(nsg: Nsg | None, name: str, props: dict, others: list[Rule] | None = None) -> None:
    """Priorities are unique per NSG and direction."""
    pool = others if others is not None else list(nsg.rules.values()) if nsg else []
    for other in pool:
        if other.name.lower() == name.lower():
            continue
        if int(other.props["priority"]) == int(props["priority"]) and other.props["direction"].lower() == props["direction"].lower():
            raise ArmError(
                400,
                "SecurityRuleConflict",
                f"Security rule {name} conflicts with rule {other.name}. Rules cannot have the same Priority and Direction. "
                "To learn more, see aka.ms/nsgrules.",
            )


def check_if_match(ctx: Ctx, current_etag: str | None) -> None:
    if_match = ctx.req.header("If-Match")
    if_none = ctx.req.header("If-None-Match")
    if if_match:
        wanted = if_match.strip()
        if current_etag is None or (wanted not in ("*", current_etag)):
            raise ArmError(412, "PreconditionFailed", f"The specified precondition 'If-Match = {wanted}' failed.")
    if if_none and if_none.strip() == "*" and current_etag is not None:
        raise ArmError(412, "PreconditionFailed", "The specified precondition 'If-None-Match = *' failed.")


# --- rendering --------------------------------------------------------------------------------


def _rule_props_json(props: dict, provisioning: str) -> dict:
    out: dict[str, Any] = {"provisioningState": provisioning}
    out.update(props)
    for _singular, plural in _PAIRS:
        out.setdefault(plural, [])  # ARM always returns the plural lists, empty when the singular is used
    return out


def rule_json(nsg: Nsg, rule: Rule, provisioning: str = "Succeeded") -> dict:
    return {
        "name": rule.name,
        "id": f"{nsg.id}/securityRules/{rule.name}",
        "etag": nsg.etag,
        "type": "Microsoft.Network/networkSecurityGroups/securityRules",
        "properties": _rule_props_json(rule.props, provisioning),
    }


def default_rules_json(nsg: Nsg) -> list[dict]:
    return [
        {
            "name": name,
            "id": f"{nsg.id}/defaultSecurityRules/{name}",
            "etag": nsg.etag,
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
            "properties": _rule_props_json(props, "Succeeded"),
        }
        for name, props in nsgeval.default_rule_props()
    ]


def nsg_json(state: Any, nsg: Nsg, provisioning: str = "Succeeded") -> dict:
    props: dict[str, Any] = {
        "provisioningState": provisioning,
        "resourceGuid": nsg.resource_guid,
        "securityRules": [rule_json(nsg, r, provisioning) for r in nsg.rules.values()],
        "defaultSecurityRules": default_rules_json(nsg),
    }
    if nsg.nic_ids:
        props["networkInterfaces"] = [{"id": i} for i in nsg.nic_ids]
    if nsg.subnet_ids:
        props["subnets"] = [{"id": i} for i in nsg.subnet_ids]
    return {"name": nsg.name, "id": nsg.id, "etag": nsg.etag, "type": NSG_TYPE, "location": nsg.location, "tags": nsg.tags, "properties": props}


def nsg_bytes(state: Any, nsg: Nsg) -> bytes:
    if nsg.json_cache is None or nsg.json_cache[0] != nsg.etag:
        nsg.json_cache = (nsg.etag, dumps(nsg_json(state, nsg)))
    return nsg.json_cache[1]


def nic_json(nic: model.Nic) -> dict:
    ipconfig: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "privateIPAddress": nic.private_ip,
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"id": nic.subnet_id},
        "primary": True,
        "privateIPAddressVersion": "IPv4",
    }
    if nic.public_ip_id:
        ipconfig["publicIPAddress"] = {"id": nic.public_ip_id}
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "resourceGuid": nic.resource_guid,
        "ipConfigurations": [
            {
                "name": "ipconfig1",
                "id": nic.ip_configuration_id,
                "etag": nic.etag,
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "properties": ipconfig,
            }
        ],
        "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
        "macAddress": nic.mac,
        "enableAcceleratedNetworking": False,
        "enableIPForwarding": False,
        "primary": nic.primary,
        "virtualMachine": {"id": nic.vm_id},
        "hostedWorkloads": [],
        "tapConfigurations": [],
        "nicType": "Standard",
    }
    if nic.nsg_id:
        props["networkSecurityGroup"] = {"id": nic.nsg_id}
    return {
        "name": nic.name,
        "id": nic.id,
        "etag": nic.etag,
        "type": "Microsoft.Network/networkInterfaces",
        "location": nic.location,
        "tags": {},
        "kind": "Regular",
        "properties": props,
    }


def nic_bytes(nic: model.Nic) -> bytes:
    if nic.json_cache is None:
        nic.json_cache = dumps(nic_json(nic))
    return nic.json_cache


def subnet_json(vnet: model.Vnet, subnet: model.Subnet) -> dict:
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "addressPrefix": subnet.prefix,
        "ipConfigurations": [{"id": i} for i in subnet.ip_configuration_ids],
        "delegations": [],
        "privateEndpointNetworkPolicies": "Disabled",
        "privateLinkServiceNetworkPolicies": "Enabled",
    }
    if subnet.nsg_id:
        props["networkSecurityGroup"] = {"id": subnet.nsg_id}
    return {"name": subnet.name, "id": subnet.id, "etag": vnet.etag, "type": "Microsoft.Network/virtualNetworks/subnets", "properties": props}


def vnet_json(vnet: model.Vnet) -> dict:
    return {
        "name": vnet.name,
        "id": vnet.id,
        "etag": vnet.etag,
        "type": "Microsoft.Network/virtualNetworks",
        "location": vnet.location,
        "tags": vnet.tags,
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": vnet.resource_guid,
            "addressSpace": {"addressPrefixes": list(vnet.address_space)},
            "subnets": [subnet_json(vnet, s) for s in vnet.subnets.values()],
            "virtualNetworkPeerings": [bastion.peering_json(p) for p in vnet.peerings.values()],
            "enableDdosProtection": False,
        },
    }


def vnet_bytes(vnet: model.Vnet) -> bytes:
    if vnet.json_cache is None:
        vnet.json_cache = dumps(vnet_json(vnet))
    return vnet.json_cache


def public_ip_json(pip: model.PublicIp) -> dict:
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "resourceGuid": pip.resource_guid,
        "ipAddress": pip.ip_address,
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": "Static",
        "idleTimeoutInMinutes": 4,
        "ipTags": [],
    }
    if pip.ip_configuration_id:
        props["ipConfiguration"] = {"id": pip.ip_configuration_id}
    return {
        "name": pip.name,
        "id": pip.id,
        "etag": pip.etag,
        "type": "Microsoft.Network/publicIPAddresses",
        "location": pip.location,
        "tags": {},
        "sku": {"name": pip.sku, "tier": "Regional"},
        "properties": props,
    }


def public_ip_bytes(pip: model.PublicIp) -> bytes:
    if pip.json_cache is None:
        pip.json_cache = dumps(public_ip_json(pip))
    return pip.json_cache


# --- helpers ----------------------------------------------------------------------------------


def _require_rg(ctx: Ctx, rg: str) -> model.ResourceGroup:
    group = ctx.state.rg(rg)
    if group is None:
        raise rg_not_found(rg)
    return group


def _in_rg(items: Any, rg: str) -> list:
    return [i for i in items if i.resource_group.lower() == rg.lower()]


def _get_nsg(ctx: Ctx, rg: str, name: str) -> Nsg:
    _require_rg(ctx, rg)
    nsg = ctx.state.nsgs.get(model.res_id(ctx.state.subscription_id, rg, NSG_TYPE, name).lower())
    if nsg is None:
        raise not_found(NSG_TYPE, name, rg)
    return nsg


def _rule_not_found(nsg: Nsg, name: str) -> ArmError:
    return ArmError(404, "NotFound", f"Resource {nsg.id}/securityRules/{name} not found.")


# --- NSG handlers -------------------------------------------------------------------------------


def list_all_nsgs(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(ctx.state.nsgs.values(), lambda n: nsg_bytes(ctx.state, n))


def list_nsgs(ctx: Ctx, rg: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    return ctx.paged(_in_rg(ctx.state.nsgs.values(), rg), lambda n: nsg_bytes(ctx.state, n))


def get_nsg(ctx: Ctx, rg: str, nsg: str, **_: str) -> Response:
    return Response(200, nsg_bytes(ctx.state, _get_nsg(ctx, rg, nsg)))


def put_nsg(ctx: Ctx, rg: str, nsg: str, **_: str) -> Response:
    group = _require_rg(ctx, rg)
    state = ctx.state
    nsg_id = model.res_id(state.subscription_id, group.name, NSG_TYPE, nsg)
    existing = state.nsgs.get(nsg_id.lower())
    check_if_match(ctx, existing.etag if existing else None)
    body = schema.network_body(ctx.req.json(), schema.NETWORK_SECURITY_GROUP)
    location = body.get("location")
    if not location and existing is None:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    if existing and location and str(location).replace(" ", "").lower() != existing.location.lower():
        raise ArmError(
            400,
            "InvalidResourceLocation",
            f"The resource '{nsg}' already exists in location '{existing.location}' in resource group '{group.name}'. "
            f"A resource with the same name cannot be created in location '{location}'. Please select a new resource name.",
        )
    props = body.get("properties") or {}
    new_rules: list[Rule] = []
    for entry in props.get("securityRules") or []:
        if not isinstance(entry, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: securityRules must be objects.")
        name = entry.get("name")
        rule_props = validate_rule_props(name, entry.get("properties"))
        if any(r.name.lower() == str(name).lower() for r in new_rules):
            raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: security rule {name} appears more than once.")
        check_priority_conflict(None, name, rule_props, others=new_rules)
        new_rules.append(Rule(name, rule_props))
    check_rule_room(len(new_rules))
    if existing is None:
        target = Nsg(
            id=nsg_id,
            name=nsg,
            resource_group=group.name,
            location=str(location).replace(" ", "").lower(),
            tags=dict(body.get("tags") or {}),
            etag=model.new_etag(),
            resource_guid=model.stable_uuid(nsg_id, model.new_etag()),
        )
    else:
        target = existing
    headers = ctx.start_lro(target.location)
    if not ctx.lro_fault:
        if existing is None:
            state.nsgs[nsg_id.lower()] = target
        target.rules = {r.name.lower(): r for r in new_rules}
        if "tags" in body:
            target.tags = dict(body.get("tags") or {})
        target.touch()
    return json_response(nsg_json(state, target, "Updating"), 201 if existing is None else 200, headers)


def patch_nsg(ctx: Ctx, rg: str, nsg: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    check_if_match(ctx, target.etag)
    body = ctx.req.json()
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request.")
    if "tags" in body:
        target.tags = dict(body.get("tags") or {})
        target.touch()
    return Response(200, nsg_bytes(ctx.state, target))


def delete_nsg(ctx: Ctx, rg: str, nsg: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    state = ctx.state
    target = state.nsgs.get(model.res_id(state.subscription_id, rg, NSG_TYPE, nsg).lower())
    if target is None:
        return Response(204)
    check_if_match(ctx, target.etag)
    users = target.nic_ids + target.subnet_ids
    if users:
        raise ArmError(
            400,
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {target.id} cannot be deleted because it is in use by the following resources: {', '.join(users)}. "
            "In order to delete the Network security group, remove the association with the resource(s).",
        )
    headers = ctx.start_lro(target.location, delete=True)
    if not ctx.lro_fault:
        del state.nsgs[target.id.lower()]
    return Response(202, b"", headers)


# --- security rule handlers ---------------------------------------------------------------------


def list_rules(ctx: Ctx, rg: str, nsg: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    return ctx.paged(target.rules.values(), lambda r: dumps(rule_json(target, r)))


def get_rule(ctx: Ctx, rg: str, nsg: str, rule: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    found = target.rules.get(rule.lower())
    if found is None:
        raise _rule_not_found(target, rule)
    return json_response(rule_json(target, found))


NSG_RULE_LIMIT = 1000
"""Security rules per NSG (Azure's subscription limits; the error as azure-rest-api-specs#3003 quotes it)."""


def check_rule_room(count: int) -> None:
    if count > NSG_RULE_LIMIT:
        raise ArmError(400, "SecurityRuleCountLimitReached", f"A security group cannot have more than {NSG_RULE_LIMIT} security rules.")


def put_rule(ctx: Ctx, rg: str, nsg: str, rule: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    existing = target.rules.get(rule.lower())
    check_if_match(ctx, target.etag if existing else None)
    body = schema.network_body(ctx.req.json(), schema.SECURITY_RULE)
    name = existing.name if existing else rule
    props = validate_rule_props(name, body.get("properties"))
    check_priority_conflict(target, name, props)
    if existing is None:
        check_rule_room(len(target.rules) + 1)
    new_rule = Rule(name, props)
    headers = ctx.start_lro(target.location)
    if not ctx.lro_fault:
        target.rules[name.lower()] = new_rule
        target.touch()
    return json_response(rule_json(target, new_rule, "Updating"), 200 if existing else 201, headers)


def delete_rule(ctx: Ctx, rg: str, nsg: str, rule: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    existing = target.rules.get(rule.lower())
    if existing is None:
        return Response(204)
    check_if_match(ctx, target.etag)
    headers = ctx.start_lro(target.location, delete=True)
    if not ctx.lro_fault:
        del target.rules[rule.lower()]
        target.touch()
    return Response(202, b"", headers)


def list_default_rules(ctx: Ctx, rg: str, nsg: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    return ctx.paged(default_rules_json(target), dumps)


def get_default_rule(ctx: Ctx, rg: str, nsg: str, rule: str, **_: str) -> Response:
    target = _get_nsg(ctx, rg, nsg)
    for r in default_rules_json(target):
        if r["name"].lower() == rule.lower():
            return json_response(r)
    raise ArmError(404, "NotFound", f"Resource {target.id}/defaultSecurityRules/{rule} not found.")


# --- read-only resources ------------------------------------------------------------------------


def list_all_nics(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(ctx.state.nics.values(), nic_bytes)


def list_nics(ctx: Ctx, rg: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    return ctx.paged(_in_rg(ctx.state.nics.values(), rg), nic_bytes)


def get_nic(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    nic = ctx.state.nics.get(model.res_id(ctx.state.subscription_id, rg, "Microsoft.Network/networkInterfaces", name).lower())
    if nic is None:
        raise not_found("Microsoft.Network/networkInterfaces", name, rg)
    return Response(200, nic_bytes(nic))


def list_all_vnets(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(ctx.state.vnets.values(), vnet_bytes)


def list_vnets(ctx: Ctx, rg: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    return ctx.paged(_in_rg(ctx.state.vnets.values(), rg), vnet_bytes)


def _get_vnet(ctx: Ctx, rg: str, name: str) -> model.Vnet:
    _require_rg(ctx, rg)
    vnet = ctx.state.vnets.get(model.res_id(ctx.state.subscription_id, rg, "Microsoft.Network/virtualNetworks", name).lower())
    if vnet is None:
        raise not_found("Microsoft.Network/virtualNetworks", name, rg)
    return vnet


def get_vnet(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    return Response(200, vnet_bytes(_get_vnet(ctx, rg, name)))


def list_subnets(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    vnet = _get_vnet(ctx, rg, name)
    return ctx.paged(vnet.subnets.values(), lambda s: dumps(subnet_json(vnet, s)))


def get_subnet(ctx: Ctx, rg: str, name: str, subnet: str, **_: str) -> Response:
    vnet = _get_vnet(ctx, rg, name)
    found = vnet.subnets.get(subnet.lower())
    if found is None:
        raise ArmError(404, "NotFound", f"Resource {vnet.id}/subnets/{subnet} not found.")
    return json_response(subnet_json(vnet, found))


def list_all_public_ips(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(ctx.state.public_ips.values(), public_ip_bytes)


def list_public_ips(ctx: Ctx, rg: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    return ctx.paged(_in_rg(ctx.state.public_ips.values(), rg), public_ip_bytes)


def get_public_ip(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    _require_rg(ctx, rg)
    pip = ctx.state.public_ips.get(model.res_id(ctx.state.subscription_id, rg, "Microsoft.Network/publicIPAddresses", name).lower())
    if pip is None:
        raise not_found("Microsoft.Network/publicIPAddresses", name, rg)
    return Response(200, public_ip_bytes(pip))


# --- long-running operation status ------------------------------------------------------------


def operation_status(ctx: Ctx, loc: str, op: str, **_: str) -> Response:
    found = ctx.app.operations.status(op)
    if found is None:
        raise ArmError(404, "NotFound", f"Operation {op} not found.")
    status, error = found
    body: dict[str, Any] = {"status": status}
    if error:
        body["error"] = error
    headers = {"Retry-After": str(ctx.app.lro_retry_after)} if status == "InProgress" else {}
    return json_response(body, 200, headers)


def operation_result(ctx: Ctx, loc: str, op: str, **_: str) -> Response:
    found = ctx.app.operations.status(op)
    if found is None:
        raise ArmError(404, "NotFound", f"Operation {op} not found.")
    status, error = found
    if status == "InProgress":
        return Response(202, b"", {"Location": f"{ctx.arm_url}{ctx.req.raw_path}?{ctx.req.raw_query}", "Retry-After": str(ctx.app.lro_retry_after)})
    if status == "Failed":
        raise ArmError(500, error["code"], error["message"])
    return Response(204)


NSG = RG + NET + r"/networkSecurityGroups/(?P<nsg>[^/]+)"

ROUTES = [
    ("GET", SUB + NET + r"/networkSecurityGroups$", list_all_nsgs),
    ("GET", RG + NET + r"/networkSecurityGroups$", list_nsgs),
    ("GET", NSG + "$", get_nsg),
    ("PUT", NSG + "$", put_nsg),
    ("PATCH", NSG + "$", patch_nsg),
    ("DELETE", NSG + "$", delete_nsg),
    ("GET", NSG + r"/securityRules$", list_rules),
    ("GET", NSG + r"/securityRules/(?P<rule>[^/]+)$", get_rule),
    ("PUT", NSG + r"/securityRules/(?P<rule>[^/]+)$", put_rule),
    ("DELETE", NSG + r"/securityRules/(?P<rule>[^/]+)$", delete_rule),
    ("GET", NSG + r"/defaultSecurityRules$", list_default_rules),
    ("GET", NSG + r"/defaultSecurityRules/(?P<rule>[^/]+)$", get_default_rule),
    ("GET", SUB + NET + r"/networkInterfaces$", list_all_nics),
    ("GET", RG + NET + r"/networkInterfaces$", list_nics),
    ("GET", RG + NET + r"/networkInterfaces/(?P<name>[^/]+)$", get_nic),
    ("GET", SUB + NET + r"/virtualNetworks$", list_all_vnets),
    ("GET", RG + NET + r"/virtualNetworks$", list_vnets),
    ("GET", RG + NET + r"/virtualNetworks/(?P<name>[^/]+)$", get_vnet),
    ("GET", RG + NET + r"/virtualNetworks/(?P<name>[^/]+)/subnets$", list_subnets),
    ("GET", RG + NET + r"/virtualNetworks/(?P<name>[^/]+)/subnets/(?P<subnet>[^/]+)$", get_subnet),
    ("GET", SUB + NET + r"/publicIPAddresses$", list_all_public_ips),
    ("GET", RG + NET + r"/publicIPAddresses$", list_public_ips),
    ("GET", RG + NET + r"/publicIPAddresses/(?P<name>[^/]+)$", get_public_ip),
    ("GET", SUB + NET + r"/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)$", operation_status),
    ("GET", SUB + NET + r"/locations/(?P<loc>[^/]+)/operationResults/(?P<op>[^/]+)$", operation_result),
]
