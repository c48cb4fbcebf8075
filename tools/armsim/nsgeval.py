"""NSG evaluation: does a packet from (source ip, port) reach (destination ip, port)?

Inbound traffic meets the subnet NSG, then the NIC NSG; both must allow it. Within an NSG, rules
are evaluated in priority order (lowest number first) and the first match decides; Azure's
default rules follow the custom ones. 127.0.0.1 (the gate's callers) is outside every VNet address
space, so it counts as an ``Internet`` source, not ``VirtualNetwork``.
"""

import ipaddress
from dataclasses import dataclass

AZURE_LB_IP = ipaddress.ip_address("168.63.129.16")

DEFAULT_RULES = [
    # name, priority, direction, access, source, destination
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork", "Allow inbound traffic from all VMs in VNET"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*", "Allow inbound traffic from azure load balancer"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork", "Allow outbound traffic from all VMs to all VMs in VNET"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet", "Allow outbound traffic from all VMs to Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
]


def default_rule_props() -> list[tuple[str, dict]]:
    out = []
    for name, priority, direction, access, src, dst, desc in DEFAULT_RULES:
        out.append(
            (
                name,
                {
                    "description": desc,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": src,
                    "destinationAddressPrefix": dst,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                },
            )
        )
    return out


def port_matches(ranges: list[str], port: int) -> bool:
    for raw in ranges:
        r = raw.strip()
        if r == "*":
            return True
        lo, _, hi = r.partition("-")
        try:
            if int(lo) <= port <= int(hi or lo):
                return True
        except ValueError:
            continue
    return False


def ranges_overlap(a: list[str], b: list[str]) -> bool:
    """Do two lists of port ranges share at least one port?"""

    def bounds(r: str) -> tuple[int, int]:
        r = r.strip()
        if r == "*":
            return 0, 65535
        lo, _, hi = r.partition("-")
        return int(lo), int(hi or lo)

    for ra in a:
        for rb in b:
            try:
                (alo, ahi), (blo, bhi) = bounds(ra), bounds(rb)
            except ValueError:
                continue
            if alo <= bhi and blo <= ahi:
                return True
    return False


def address_matches(prefix: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, vnet_spaces: list) -> bool:
    p = prefix.strip()
    low = p.lower()
    in_vnet = any(ip.version == net.version and ip in net for net in vnet_spaces)
    if p == "*":
        return True
    if low == "virtualnetwork":
        return in_vnet
    if low == "internet":
        return not in_vnet and ip != AZURE_LB_IP
    if low == "azureloadbalancer":
        return ip == AZURE_LB_IP
    try:
        net = ipaddress.ip_network(p, strict=False)
    except ValueError:
        return False  # other service tags / ASGs: never match a simulated address
    return ip.version == net.version and ip in net


def protocol_matches(rule_protocol: str, protocol: str) -> bool:
    return rule_protocol == "*" or rule_protocol.lower() == protocol.lower()


@dataclass
class Decision:
    allowed: bool
    nsg: str | None  # NSG id that decided (None: no NSG at this level)
    rule: str | None  # rule name that decided


def evaluate_nsg(rules: list, *, src: str, src_port: int, dst: str, dst_port: int, protocol: str, vnet_spaces: list) -> tuple[bool, str]:
    """First matching inbound rule of (custom rules + default rules) -> (allowed, rule name).

    ``rules`` are model.Rule objects (custom rules only).
    """
    from armsim.model import Rule

    src_ip = ipaddress.ip_address(src)
    dst_ip = ipaddress.ip_address(dst)
    candidates = [r for r in rules if r.direction.lower() == "inbound"]
    candidates.sort(key=lambda r: r.priority)
    candidates += [Rule(name, props) for name, props in default_rule_props() if props["direction"] == "Inbound"]
    for rule in candidates:
        if not protocol_matches(rule.props.get("protocol", "*"), protocol):
            continue
        if not any(address_matches(p, src_ip, vnet_spaces) for p in rule.source_prefixes):
            continue
        if not any(address_matches(p, dst_ip, vnet_spaces) for p in rule.destination_prefixes):
            continue
        if not port_matches(rule.source_ports, src_port) or not port_matches(rule.destination_ports, dst_port):
            continue
        return rule.access.lower() == "allow", rule.name
    return False, "DenyAllInBound"  # unreachable: DenyAllInBound matches everything


def standard_public_ip(state, vm) -> bool:
    """Whether the VM's primary NIC has a Standard-SKU public IP ("secure by default": closed to
    inbound traffic unless an NSG on the path allows it; Basic-SKU addresses are retired)."""
    nic = next((state.nics.get(n.lower()) for n in vm.nic_ids if state.nics.get(n.lower())), None)
    pip = state.public_ips.get(nic.public_ip_id.lower()) if nic is not None and nic.public_ip_id else None
    return pip is not None and pip.sku.lower() == "standard"


def evaluate_path(state, vm, src: str, src_port: int, *, dst_port: int, protocol: str = "Tcp") -> list[Decision] | None:
    """Evaluate every NSG on the way to the VM's primary NIC. None if the VM has no NIC."""
    nic = next((state.nics.get(n.lower()) for n in vm.nic_ids if state.nics.get(n.lower())), None)
    if nic is None:
        return None
    subnet = state.subnet(nic.subnet_id)
    spaces = state.vm_address_spaces(vm)
    decisions = []
    for nsg_id in (subnet.nsg_id if subnet else None, nic.nsg_id):
        nsg = state.nsgs.get(nsg_id.lower()) if nsg_id else None
        if nsg is None:
            decisions.append(Decision(True, None, None))
            continue
        allowed, rule = evaluate_nsg(
            list(nsg.rules.values()), src=src, src_port=src_port, dst=nic.private_ip, dst_port=dst_port, protocol=protocol, vnet_spaces=spaces
        )
        decisions.append(Decision(allowed, nsg.id, rule))
    return decisions
