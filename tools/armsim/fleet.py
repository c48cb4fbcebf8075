"""Deterministic seed generator for large fleets (``python -m armsim fleet``).

Layout: resource groups ``rg-NNN`` spread round-robin over the first L regions, each with one
VNet (10.x.y.0/16) holding two subnets: ``protected`` (associated with the group's subnet NSG,
which allows HTTPS) and ``plain`` (no NSG). VMs ``vm-NNNNN`` are spread round-robin over the
groups; per VM, one draw decides its NSG layout:

* ``no_nsg_fraction``: subnet ``plain`` and no NIC NSG -> unsupported for JIT;
* ``subnet_nsg_fraction``: subnet ``protected``, no NIC NSG;
* otherwise: subnet ``plain`` with its own NIC NSG ``<vm>-nsg`` (as the portal creates).

``open_ssh_fraction`` of the VMs with an NSG get an allow-from-anywhere rule for their
management port (22, or 3389 on Windows) -- the JIT bypass case. The same arguments always give
the same YAML.
"""

import json
import random

LOCATIONS = [
    "westeurope",
    "eastus",
    "northeurope",
    "westus2",
    "southeastasia",
    "uksouth",
    "centralus",
    "japaneast",
    "australiaeast",
    "francecentral",
]


def _location(i: int) -> str:
    return LOCATIONS[i] if i < len(LOCATIONS) else f"region{i}"


def generate(
    vms: int,
    *,
    resource_groups: int = 1,
    locations: int = 1,
    windows_fraction: float = 0.3,
    no_nsg_fraction: float = 0.05,
    subnet_nsg_fraction: float = 0.3,
    open_ssh_fraction: float = 0.05,
    stopped_fraction: float = 0.05,
    seed: int = 1,
) -> dict:
    if vms < 0 or resource_groups < 1 or locations < 1:
        raise ValueError("need vms >= 0, resource_groups >= 1, locations >= 1")
    rng = random.Random(seed)
    groups = []
    for g in range(resource_groups):
        a, b = 10 + g // 256, g % 256
        rg = f"rg-{g:03d}"
        groups.append(
            {
                "name": rg,
                "location": _location(g % locations),
                "tags": {"fleet": "generated"},
                "network_security_groups": [
                    {
                        "name": f"nsg-{rg}-subnet",
                        "rules": [
                            {"name": "AllowHttpsInbound", "priority": 300, "access": "Allow", "protocol": "Tcp", "source": "*", "destination_ports": ["443"]}
                        ],
                    }
                ],
                "virtual_networks": [
                    {
                        "name": f"vnet-{rg}",
                        "address_space": f"{a}.{b}.0.0/16",
                        "subnets": [
                            {"name": "protected", "prefix": f"{a}.{b}.0.0/17", "nsg": f"nsg-{rg}-subnet"},
                            {"name": "plain", "prefix": f"{a}.{b}.128.0/17"},
                        ],
                    }
                ],
                "virtual_machines": [],
                "_next": {"protected": 0, "plain": 0, "subnet_rule_priority": 310},
                "_net": (a, b),
            }
        )
    width = max(5, len(str(vms)))
    for i in range(vms):
        u_nsg, u_os, u_power, u_open, u_pip = (rng.random() for _ in range(5))
        env = rng.choice(["prod", "dev", "test"])
        group = groups[i % resource_groups]
        name = f"vm-{i:0{width}d}"
        os_type = "Windows" if u_os < windows_fraction else "Linux"
        port = "3389" if os_type == "Windows" else "22"
        if u_nsg < no_nsg_fraction:
            subnet, nic_nsg = "plain", None
        elif u_nsg < no_nsg_fraction + subnet_nsg_fraction:
            subnet, nic_nsg = "protected", None
        else:
            subnet, nic_nsg = "plain", f"{name}-nsg"
        k = group["_next"][subnet]
        group["_next"][subnet] = k + 1
        a, b = group["_net"]
        third = (0 if subnet == "protected" else 128) + k // 250
        if third >= (128 if subnet == "protected" else 256):
            raise ValueError(f"too many VMs in {group['name']}/{subnet}: use more resource groups")
        private_ip = f"{a}.{b}.{third}.{k % 250 + 4}"
        is_open = u_open < open_ssh_fraction
        if nic_nsg:
            rules = []
            if is_open:
                rules.append(
                    {
                        "name": f"Allow{'RDP' if port == '3389' else 'SSH'}",
                        "priority": 300,
                        "access": "Allow",
                        "protocol": "Tcp",
                        "source": "*",
                        "destination_ports": [port],
                    }
                )
            group["network_security_groups"].append({"name": nic_nsg, "rules": rules})
        elif subnet == "protected" and is_open and group["_next"]["subnet_rule_priority"] <= 4000:
            prio = group["_next"]["subnet_rule_priority"]
            group["_next"]["subnet_rule_priority"] = prio + 1
            group["network_security_groups"][0]["rules"].append(
                {
                    "name": f"Allow-{port}-{name}",
                    "priority": prio,
                    "access": "Allow",
                    "protocol": "Tcp",
                    "source": "*",
                    "destination": private_ip,
                    "destination_ports": [port],
                }
            )
        nic = {"subnet": f"vnet-{group['name']}/{subnet}", "private_ip": private_ip, "nsg": nic_nsg, "public_ip": u_pip < 0.2}
        group["virtual_machines"].append(
            {
                "name": name,
                "os_type": os_type,
                "power_state": "deallocated" if u_power < stopped_fraction else "running",
                "tags": {"env": env, "app": f"app-{i % 7}"},
                "nics": [nic],
            }
        )
    for group in groups:
        del group["_next"], group["_net"]
    return {
        "subscription_id": "00000000-0000-0000-0000-000000000001",
        "tenant_id": "00000000-0000-0000-0000-0000000000aa",
        "principals": [{"client_id": "00000000-0000-0000-0000-0000000000c1", "client_secret": "armsim-secret", "name": "armsim-ci"}],
        "resource_groups": groups,
    }


def to_yaml(data: dict) -> str:
    """The seed as JSON laid out one resource per line.

    JSON is YAML, so this is a valid seed YAML file; armsim reads it with the fast JSON parser
    (a 10,000-VM fleet loads in well under a second instead of several with a YAML parser).
    """
    lines = ["# generated by: python -m armsim fleet (JSON, which is also YAML)", "{"]
    for key, value in data.items():
        if key != "resource_groups":
            lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    lines.append(' "resource_groups": [')
    groups = data["resource_groups"]
    for gi, group in enumerate(groups):
        scalars = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in group.items() if not isinstance(v, list)]
        lists = [k for k, v in group.items() if isinstance(v, list)]
        lines.append("  {" + ", ".join(scalars) + ("," if lists else ""))
        for li, key in enumerate(lists):
            items = group[key]
            lines.append(f"   {json.dumps(key)}: [")
            lines.extend("    " + json.dumps(item) + ("," if ii < len(items) - 1 else "") for ii, item in enumerate(items))
            lines.append("   ]" + ("," if li < len(lists) - 1 else ""))
        lines.append("  }" + ("," if gi < len(groups) - 1 else ""))
    lines += [" ]", "}", ""]
    return "\n".join(lines)
