"""Seed YAML -> State. See README.md ("Seed format") for every key."""

import ipaddress
import json
import os
from typing import Any

import yaml

from armsim import model
from armsim.model import BastionHost, Gate, Nic, Nsg, Peering, Principal, PublicIp, ResourceGroup, State, Subnet, Vm, Vnet

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
DEFAULT_TENANT = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_PRINCIPAL = {"client_id": "00000000-0000-0000-0000-0000000000c1", "client_secret": "armsim-secret", "name": "armsim-ci"}
OS_DEFAULT_PORTS = {"linux": [22], "windows": [3389, 5985, 5986]}


class SeedError(ValueError):
    pass


def load(source: str | os.PathLike | dict) -> dict:
    """Read a seed from a path (YAML; JSON is YAML too) or take a dict as-is."""
    if isinstance(source, dict):
        return source
    with open(source, encoding="utf-8") as fh:
        return load_text(fh.read(), str(source))


def load_text(text: str, where: str = "seed") -> dict:
    data = _load_json(text)
    if data is None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            raise SeedError(f"{where}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SeedError(f"{where}: the seed must be a YAML mapping")
    return data


def _load_json(text: str) -> Any:
    """Fast path: a seed written as JSON (with optional leading # comment lines), as ``fleet`` does."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if not body.lstrip().startswith("{"):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _one_or_many(props: dict, singular: str, plural: str, value: Any, default: Any = "*") -> None:
    values = [str(v) for v in _list(value if value is not None else default)]
    if len(values) == 1:
        props[singular] = values[0]
    else:
        props[plural] = values


def seed_rule_props(rule: dict) -> dict:
    """Seed rule (snake_case, lenient) -> ARM securityRule properties."""
    props: dict[str, Any] = {
        "protocol": str(rule.get("protocol", "*")),
        "access": str(rule.get("access", "Allow")),
        "direction": str(rule.get("direction", "Inbound")),
        "priority": rule.get("priority"),
    }
    _one_or_many(props, "sourceAddressPrefix", "sourceAddressPrefixes", rule.get("source"))
    _one_or_many(props, "sourcePortRange", "sourcePortRanges", rule.get("source_ports"))
    _one_or_many(props, "destinationAddressPrefix", "destinationAddressPrefixes", rule.get("destination"))
    _one_or_many(props, "destinationPortRange", "destinationPortRanges", rule.get("destination_ports"))
    if rule.get("description") is not None:
        props["description"] = str(rule["description"])
    return props


class _Builder:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.state = State()
        self.mac_counter = 0
        self.pip_counter = 0
        self.used_ips: set[str] = set()
        self.subnet_cursor: dict[str, int] = {}

    def build(self, now: float) -> State:
        from armsim import jit, network  # late import: they import model

        s = self.state
        d = self.data
        s.subscription_id = str(d.get("subscription_id") or DEFAULT_SUBSCRIPTION)
        s.subscription_name = str(d.get("subscription_name") or "armsim")
        plan = str(d.get("defender_for_servers") or "P2")  # P2 (default), P1 or Free
        if plan not in ("P2", "P1", "Free"):
            raise SeedError(f"defender_for_servers must be P2, P1 or Free, not {plan!r}")
        s.servers_plan = {"pricingTier": "Free"} if plan == "Free" else {"pricingTier": "Standard", "subPlan": plan}
        s.tenant_id = str(d.get("tenant_id") or DEFAULT_TENANT)
        s.tenants = {s.tenant_id.lower()}
        principals = _list(d.get("principals")) or [DEFAULT_PRINCIPAL]
        for p in principals:
            self._principal(p, s.tenant_id)
        for t in _list(d.get("extra_tenants")):
            tid = str(t["tenant_id"])
            s.tenants.add(tid.lower())
            for p in _list(t.get("principals")):
                self._principal(p, tid)

        groups = _list(d.get("resource_groups"))
        for g in groups:
            name = str(g["name"])
            if name.lower() in s.resource_groups:
                raise SeedError(f"resource group {name!r} appears twice")
            s.resource_groups[name.lower()] = ResourceGroup(
                model.rg_id(s.subscription_id, name), name, str(g.get("location", "westeurope")), dict(g.get("tags") or {})
            )
        for g in groups:
            for n in _list(g.get("network_security_groups")):
                self._nsg(g, n, network)
        for g in groups:
            for v in _list(g.get("virtual_networks")):
                self._vnet(g, v)
        for g in groups:
            for v in _list(g.get("virtual_networks")):
                for p in _list(v.get("peerings")):
                    self._peering(g, v, p)
            for b in _list(g.get("bastion_hosts")):
                self._bastion(g, b)
        for g in groups:
            for vm in _list(g.get("virtual_machines")):
                self._vm(g, vm)
        for p in _list(d.get("jit_policies")):
            self._policy(p, jit, now)
        return s

    def _principal(self, p: dict, tenant_id: str) -> None:
        if p.get("username"):
            self._user(p, tenant_id)
            return
        client_id = str(p.get("client_id") or DEFAULT_PRINCIPAL["client_id"])
        certificate = _certificate(p.get("certificate")) if p.get("certificate") else None
        secret = p.get("client_secret")
        if secret is None and certificate is None:
            secret = DEFAULT_PRINCIPAL["client_secret"]
        self.state.principals[client_id.lower()] = Principal(
            client_id=client_id,
            client_secret=str(secret) if secret is not None else None,
            certificate_pem=certificate,
            name=str(p.get("name") or client_id),
            object_id=str(p.get("object_id") or model.stable_uuid("principal", client_id)),
            tenant_id=tenant_id,
            role=str(p.get("role") or "Owner"),
            actions=_actions(p.get("actions"), client_id),
        )

    def _user(self, p: dict, tenant_id: str) -> None:
        """A user (``username`` + ``password``) who signs in with the resource owner password grant;
        kept among the principals under the lower-cased user name."""
        username = str(p["username"])
        if not p.get("password"):
            raise SeedError(f"user {username!r} needs a password")
        self.state.principals[username.lower()] = Principal(
            client_id=username,
            client_secret=None,
            name=str(p.get("name") or username),
            object_id=str(p.get("object_id") or model.stable_uuid("user", username)),
            tenant_id=tenant_id,
            role=str(p.get("role") or "Owner"),
            actions=_actions(p.get("actions"), username),
            username=username,
            password=str(p["password"]),
        )

    def _ref(self, g: dict, value: str, rtype: str) -> str:
        """A reference by name (same resource group), 'rg/name', or full id -> full id."""
        value = str(value)
        if value.startswith("/"):
            return value
        parts = value.split("/")
        rg = parts[0] if len(parts) == 2 else str(g["name"])
        return model.res_id(self.state.subscription_id, rg, rtype, parts[-1])

    def _nsg(self, g: dict, n: dict, network: Any) -> None:
        s = self.state
        rg = s.rg(str(g["name"]))
        nsg_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Network/networkSecurityGroups", str(n["name"]))
        nsg = Nsg(
            id=nsg_id,
            name=str(n["name"]),
            resource_group=rg.name,
            location=str(n.get("location") or rg.location),
            tags=dict(n.get("tags") or {}),
            etag=model.new_etag(),
            resource_guid=model.stable_uuid(nsg_id),
        )
        for r in _list(n.get("rules")):
            try:
                props = network.validate_rule_props(str(r.get("name")), seed_rule_props(r))
                network.check_priority_conflict(nsg, str(r["name"]), props)
            except network.ArmError as exc:
                raise SeedError(f"NSG {nsg.name!r}, rule {r.get('name')!r}: {exc.message}") from exc
            nsg.rules[str(r["name"]).lower()] = model.Rule(str(r["name"]), props)
        s.nsgs[nsg_id.lower()] = nsg

    def _vnet(self, g: dict, v: dict) -> None:
        s = self.state
        rg = s.rg(str(g["name"]))
        vnet_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Network/virtualNetworks", str(v["name"]))
        space = [str(x) for x in _list(v.get("address_space") or "10.0.0.0/16")]
        subnets = {}
        for sn in _list(v.get("subnets")) or [{"name": "default", "prefix": space[0]}]:
            sid = f"{vnet_id}/subnets/{sn['name']}"
            nsg_id = None
            if sn.get("nsg"):
                nsg_id = self._ref(g, sn["nsg"], "Microsoft.Network/networkSecurityGroups")
                nsg = s.nsgs.get(nsg_id.lower())
                if nsg is None:
                    raise SeedError(f"subnet {sn['name']!r} of {v['name']!r}: unknown NSG {sn['nsg']!r}")
                nsg_id = nsg.id
                nsg.subnet_ids.append(sid)
            subnets[str(sn["name"]).lower()] = Subnet(sid, str(sn["name"]), str(sn.get("prefix") or space[0]), nsg_id)
        s.vnets[vnet_id.lower()] = Vnet(
            id=vnet_id,
            name=str(v["name"]),
            resource_group=rg.name,
            location=str(v.get("location") or rg.location),
            tags=dict(v.get("tags") or {}),
            address_space=space,
            subnets=subnets,
            etag=model.new_etag(),
            resource_guid=model.stable_uuid(vnet_id),
        )

    def _peering(self, g: dict, v: dict, p: dict) -> None:
        """``{name, remote: vnet | rg/vnet | id, allow_forwarded_traffic, ...}``; the state
        (Connected or Initiated) is worked out once every subscription is built."""
        s = self.state
        vnet = s.vnets[model.res_id(s.subscription_id, str(g["name"]), "Microsoft.Network/virtualNetworks", str(v["name"])).lower()]
        if not p.get("remote"):
            raise SeedError(f"peering {p.get('name')!r} of {vnet.name!r}: remote (the peered virtual network) is required")
        remote_id = self._ref(g, p["remote"], "Microsoft.Network/virtualNetworks")
        name = str(p.get("name") or f"{vnet.name}-to-{remote_id.rsplit('/', 1)[-1]}")
        flags = {}
        for key in ("allow_virtual_network_access", "allow_forwarded_traffic", "allow_gateway_transit", "use_remote_gateways"):
            if p.get(key) is not None:
                flags["".join(w if i == 0 else w.capitalize() for i, w in enumerate(key.split("_")))] = bool(p[key])
        peering_id = f"{vnet.id}/virtualNetworkPeerings/{name}"
        vnet.peerings[name.lower()] = Peering(peering_id, name, remote_id, flags, model.new_etag(), model.stable_uuid(peering_id))

    def _bastion(self, g: dict, b: dict) -> None:
        """``{name, subnet: vnet/AzureBastionSubnet | rg/vnet/AzureBastionSubnet | id, sku, public_ip}``."""
        from armsim import arm, bastion  # late import: they import model

        s = self.state
        rg = s.rg(str(g["name"]))
        name = str(b["name"])
        host_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Network/bastionHosts", name)
        location = str(b.get("location") or rg.location)
        subnet = self._subnet_for(g, b.get("subnet") or f"{b.get('virtual_network')}/{model.BASTION_SUBNET_NAME}")
        try:
            bastion.check_bastion_subnet(s, host_id, subnet.id, location)
        except arm.ArmError as exc:
            raise SeedError(f"bastion host {name!r}: {exc.message}") from exc
        sku = str(b.get("sku") or "Standard")
        pip_id = None
        if sku != "Developer" and b.get("public_ip", True):
            self.pip_counter += 1
            n = self.pip_counter + 10
            pip_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Network/publicIPAddresses", f"{name}-ip")
            s.public_ips[pip_id.lower()] = PublicIp(
                id=pip_id,
                name=f"{name}-ip",
                resource_group=rg.name,
                location=location,
                ip_address=f"20.{50 + (n >> 16) % 200}.{(n >> 8) & 255}.{n & 255}",
                ip_configuration_id=f"{host_id}/bastionHostIpConfigurations/IpConf",
                etag=model.new_etag(),
                resource_guid=model.stable_uuid(pip_id),
            )
        s.bastions[host_id.lower()] = BastionHost(
            id=host_id,
            name=name,
            resource_group=rg.name,
            location=location,
            tags=dict(b.get("tags") or {}),
            sku=sku,
            subnet_id=subnet.id,
            public_ip_id=pip_id,
            ip_configuration_name="IpConf",
            etag=model.new_etag(),
            resource_guid=model.stable_uuid(host_id),
        )
        subnet.ip_configuration_ids.append(f"{host_id}/bastionHostIpConfigurations/IpConf")

    def _subnet_for(self, g: dict, ref: str | None) -> Subnet:
        s = self.state
        if ref is None:
            for vnet in s.vnets.values():
                if vnet.resource_group.lower() == str(g["name"]).lower() and vnet.subnets:
                    return next(iter(vnet.subnets.values()))
            raise SeedError(f"resource group {g['name']!r}: a VM NIC needs a subnet and the group has no virtual network")
        ref = str(ref)
        if ref.startswith("/"):
            subnet = s.subnet(ref)
        else:
            parts = ref.split("/")
            if len(parts) not in (2, 3):
                raise SeedError(f"NIC subnet {ref!r}: use 'vnet/subnet', 'rg/vnet/subnet' or a full id")
            rg = parts[0] if len(parts) == 3 else str(g["name"])
            vnet_id = model.res_id(s.subscription_id, rg, "Microsoft.Network/virtualNetworks", parts[-2])
            subnet = s.subnet(f"{vnet_id}/subnets/{parts[-1]}")
        if subnet is None:
            raise SeedError(f"unknown subnet {ref!r}")
        return subnet

    def _free_ip(self, subnet: Subnet) -> str:
        net = ipaddress.ip_network(subnet.prefix, strict=False)
        start = self.subnet_cursor.get(subnet.id, 4)  # Azure reserves the first four addresses
        for i in range(start, net.num_addresses - 1):
            candidate = str(net.network_address + i)
            if candidate not in self.used_ips:
                self.subnet_cursor[subnet.id] = i + 1
                return candidate
        raise SeedError(f"subnet {subnet.id} is full")

    def _vm(self, g: dict, v: dict) -> None:
        s = self.state
        rg = s.rg(str(g["name"]))
        name = str(v["name"])
        vm_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Compute/virtualMachines", name)
        if vm_id.lower() in s.vms:
            raise SeedError(f"VM {name!r} appears twice in {rg.name!r}")
        location = str(v.get("location") or rg.location)
        os_type = str(v.get("os_type") or "Linux")
        if os_type.lower() not in ("linux", "windows"):
            raise SeedError(f"VM {name!r}: os_type must be Linux or Windows")
        nic_specs = _list(v.get("nics")) or [{}]
        nic_ids = []
        for i, spec in enumerate(nic_specs):
            nic_name = str(spec.get("name") or (f"{name}-nic" if i == 0 else f"{name}-nic{i}"))
            nic_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Network/networkInterfaces", nic_name)
            subnet = self._subnet_for(g, spec.get("subnet"))
            nsg_id = None
            if spec.get("nsg"):
                nsg = s.nsgs.get(self._ref(g, spec["nsg"], "Microsoft.Network/networkSecurityGroups").lower())
                if nsg is None:
                    raise SeedError(f"VM {name!r}: unknown NIC NSG {spec['nsg']!r}")
                nsg_id = nsg.id
                nsg.nic_ids.append(nic_id)
            private_ip = str(spec.get("private_ip") or self._free_ip(subnet))
            self.used_ips.add(private_ip)
            pip_id = None
            if spec.get("public_ip"):
                pip_id = self._public_ip(rg, location, nic_id, f"{name}-ip" if i == 0 else f"{name}-ip{i}", spec["public_ip"])
            self.mac_counter += 1
            mac = "00-0D-3A-{:02X}-{:02X}-{:02X}".format(*self.mac_counter.to_bytes(3, "big"))
            s.nics[nic_id.lower()] = Nic(
                id=nic_id,
                name=nic_name,
                resource_group=rg.name,
                location=location,
                private_ip=private_ip,
                subnet_id=subnet.id,
                nsg_id=nsg_id,
                public_ip_id=pip_id,
                vm_id=vm_id,
                primary=i == 0,
                mac=mac,
                etag=model.new_etag(),
                resource_guid=model.stable_uuid(nic_id),
            )
            subnet.ip_configuration_ids.append(nic_id + "/ipConfigurations/ipconfig1")
            nic_ids.append(nic_id)
        gates = [Gate(int(gt["port"]), str(gt["backend"]) if gt.get("backend") else None) for gt in _list(v.get("gates"))]
        s.vms[vm_id.lower()] = Vm(
            id=vm_id,
            name=name,
            resource_group=rg.name,
            location=location,
            os_type="Windows" if os_type.lower() == "windows" else "Linux",
            power_state=str(v.get("power_state") or "running").lower(),
            vm_size=str(v.get("vm_size") or "Standard_B2s"),
            tags=dict(v.get("tags") or {}),
            vm_uuid=model.stable_uuid("vm", vm_id),
            nic_ids=nic_ids,
            gates=gates,
        )

    def _public_ip(self, rg: ResourceGroup, location: str, nic_id: str, name: str, value: Any) -> str:
        s = self.state
        self.pip_counter += 1
        sku = "Standard"
        if isinstance(value, dict):  # {address: ..., sku: Basic|Standard}
            sku = str(value.get("sku") or "Standard")
            value = value.get("address") or True
        if isinstance(value, str):
            address = value
        else:
            n = self.pip_counter + 10
            address = f"20.{50 + (n >> 16) % 200}.{(n >> 8) & 255}.{n & 255}"
        pip_id = model.res_id(s.subscription_id, rg.name, "Microsoft.Network/publicIPAddresses", name)
        s.public_ips[pip_id.lower()] = PublicIp(
            id=pip_id,
            name=name,
            resource_group=rg.name,
            location=location,
            ip_address=address,
            ip_configuration_id=nic_id + "/ipConfigurations/ipconfig1",
            etag=model.new_etag(),
            resource_guid=model.stable_uuid(pip_id),
            sku=sku,
        )
        return pip_id

    def _policy(self, p: dict, jit: Any, now: float) -> None:
        s = self.state
        rg = s.rg(str(p.get("resource_group", "")))
        if rg is None:
            raise SeedError(f"jit policy {p.get('name')!r}: unknown resource_group {p.get('resource_group')!r}")
        location = str(p.get("location") or rg.location)
        vms = []
        for raw in _list(p.get("virtual_machines")):
            entry = {"name": raw} if isinstance(raw, str) else raw
            vm_id = entry.get("id") or model.res_id(
                s.subscription_id, str(entry.get("resource_group") or rg.name), "Microsoft.Compute/virtualMachines", str(entry["name"])
            )
            vm = s.vms.get(str(vm_id).lower())
            ports = _list(entry.get("ports"))
            if not ports:
                ports = OS_DEFAULT_PORTS[vm.os_type.lower()] if vm else [22]
            vms.append({"id": vm_id, "ports": [_seed_port(port) for port in ports]})
        body = {"kind": "Basic", "properties": {"virtualMachines": vms}}
        try:
            jit.put_policy(s, rg.name, location, str(p.get("name") or "default"), body, now=now)
        except jit.ArmError as exc:
            raise SeedError(f"jit policy {p.get('name')!r}: {exc.code}: {exc.message}") from exc


def _actions(value: Any, client_id: str) -> tuple[str, ...] | None:
    """A principal's ``actions`` allow-list (RBAC actions, ``*`` wildcards) -> a tuple, or None."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
        raise SeedError(f"principal {client_id!r}: actions must be a list of RBAC action strings")
    return tuple(value)


def _certificate(value: Any) -> str:
    """A principal's ``certificate``: PEM text or the path of a PEM file -> the certificate PEM."""
    text = str(value)
    if "-----BEGIN" not in text:
        try:
            with open(text, encoding="ascii") as fh:
                text = fh.read()
        except OSError as exc:
            raise SeedError(f"principal certificate {value!r}: {exc}") from exc
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----")
    if begin < 0 or end < 0:
        raise SeedError(f"principal certificate {value!r}: no PEM certificate found")
    return text[begin : end + len("-----END CERTIFICATE-----")] + "\n"


def _seed_port(port: Any) -> dict:
    if isinstance(port, int):
        port = {"number": port}
    out = {
        "number": port["number"],
        "protocol": port.get("protocol", "*"),
        "maxRequestAccessDuration": port.get("max_request_access_duration", "PT3H"),
    }
    if port.get("allowed_source_address_prefixes") is not None:
        out["allowedSourceAddressPrefixes"] = _list(port["allowed_source_address_prefixes"])
    else:
        out["allowedSourceAddressPrefix"] = port.get("allowed_source_address_prefix", "*")
    return out


def build_state(source: str | os.PathLike | dict, now: float) -> State:
    """Build a fresh State (the seed's first subscription) from a seed path or dict (raises
    SeedError on a bad seed)."""
    return build_states(source, now)[0]


SHARED_KEYS = ("tenant_id", "principals", "extra_tenants")
"""Seed keys every subscription shares: one directory (tenant, principals) over all of them."""


def build_states(source: str | os.PathLike | dict, now: float) -> list[State]:
    """One State per subscription: the seed's own, then each of ``extra_subscriptions`` (same
    tenant and principals; their own ``subscription_id``, ``subscription_name``,
    ``resource_groups`` and ``jit_policies``)."""
    data = load(source)
    shared = {key: data[key] for key in SHARED_KEYS if key in data}
    parts = [data] + [{**shared, **extra} for extra in _list(data.get("extra_subscriptions"))]
    states = []
    try:
        for part in parts:
            if part is not data and not part.get("subscription_id"):
                raise SeedError("every entry of extra_subscriptions needs a subscription_id")
            states.append(_Builder(part).build(now))
    except (KeyError, TypeError) as exc:
        raise SeedError(f"invalid seed: {exc!r}") from exc
    ids = [state.subscription_id.lower() for state in states]
    if len(set(ids)) != len(ids):
        raise SeedError(f"subscription ids must be unique: {', '.join(ids)}")
    _check_peerings(states)
    return states


def _check_peerings(states: list[State]) -> None:
    """Every seeded peering names an existing VNet of some subscription; then their states."""
    vnets = {vnet_id: vnet for state in states for vnet_id, vnet in state.vnets.items()}
    for vnet in vnets.values():
        for peering in vnet.peerings.values():
            remote = vnets.get(peering.remote_vnet_id.lower())
            if remote is None:
                raise SeedError(f"peering {peering.name!r} of {vnet.name!r}: unknown remote virtual network {peering.remote_vnet_id!r}")
            peering.remote_vnet_id = remote.id
    model.sync_peerings(list(vnets.values()), lambda vnet_id: vnets.get(vnet_id.lower()))
