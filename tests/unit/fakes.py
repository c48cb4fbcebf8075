"""Test data shared by the unit tests: resource ids, REST-shaped NSG rules and NSGs, VM records,
JIT policies and jit_request's ``opened`` items.

Imported as ``fakes`` (tests/unit/conftest.py puts this directory on ``sys.path``). Everything here
is plain data built without the collection's code, so a test never checks a function against
itself.
"""

from datetime import datetime, timezone

UTC = timezone.utc  # noqa: UP017 - the tests run on every Python the collection supports
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
"""The reference "now" of timestamp and request tests."""

SUB = "00000000-0000-0000-0000-000000000001"


# --------------------------------------------------------------------------------------------------
# Resource ids


def resource_group_id(rg="rg-web", sub=SUB):
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def vm_id(name, rg="rg-web", sub=SUB):
    return f"{resource_group_id(rg, sub)}/providers/Microsoft.Compute/virtualMachines/{name}"


def nsg_id(name, rg="rg-web", sub=SUB):
    return f"{resource_group_id(rg, sub)}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def jit_policy_id(name="default", rg="rg-web", location="westeurope", sub=SUB):
    return f"{resource_group_id(rg, sub)}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/{name}"


# web-1 in rg-web behind a subnet NSG and a NIC NSG (jit_request, the close planner, NSG matching)
WEB_VM = vm_id("web-1")
VM_IP = "10.1.0.4"
NSG_SUBNET = nsg_id("nsg-subnet")
NSG_NIC = nsg_id("nsg-nic")

# app-1 and db-1 (the jit_guard callback and its record)
APP_VM = vm_id("app-1", rg="rg-app")
DB_VM = vm_id("db-1", rg="rg-db")
APP_NSG = nsg_id("nsg-app", rg="rg-app")
APP_NIC_NSG = nsg_id("app-1-nic-nsg", rg="rg-app")


# --------------------------------------------------------------------------------------------------
# NSG rules and NSGs (REST shape)

DENY_NAME = "MicrosoftDefenderForCloud-JITRule_-1906413329_7F43A45ABCC04C4A9D6E3A3D3B0C2D1E"
ALLOW_NAME = "MicrosoftDefenderForCloud-JITRule-1235477045-5D3F2F6F-0B5E-4C43-9F10-2F1B0C6D7A11"
SECOND_ALLOW_NAME = "MicrosoftDefenderForCloud-JITRule-77-AAAA7DE4D4F44F73A5AB0D38C7F8B1B2"
DENY_DESCRIPTION = "MDC JIT Network Access rule for policy 'default' of VM 'web-1'."
ALLOW_DESCRIPTION = "MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'web-1'."


def rest_rule(  # noqa: PLR0917 - a compact table-friendly test helper
    name, priority, access="Allow", source="*", ports="22", destination="*", protocol="Tcp", direction="Inbound", description=None, source_ports="*", etag=None
):
    """A REST-shaped security rule; list values use the plural fields."""
    props = {"priority": priority, "access": access, "protocol": protocol, "direction": direction}
    for single, plural, value in (
        ("sourceAddressPrefix", "sourceAddressPrefixes", source),
        ("destinationAddressPrefix", "destinationAddressPrefixes", destination),
        ("destinationPortRange", "destinationPortRanges", ports),
        ("sourcePortRange", "sourcePortRanges", source_ports),
    ):
        if isinstance(value, (list, tuple)):
            props[plural] = list(value)
        else:
            props[single] = value
    if description is not None:
        props["description"] = description
    result = {
        "name": name,
        "id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg/securityRules/{name}",
        "properties": props,
    }
    if etag is not None:
        result["etag"] = etag
    return result


def jit_deny(priority=4096, ports=("22", "3389"), destination=VM_IP, name=DENY_NAME):
    """The deny rule Defender for Cloud keeps for a VM's JIT ports."""
    return rest_rule(name, priority, "Deny", "*", list(ports), destination, "*", description=DENY_DESCRIPTION)


def jit_allow(priority=100, port="22", *, source="203.0.113.7", destination=VM_IP, name=ALLOW_NAME, etag=None):
    """The allow rule an initiate request makes (``port`` a string or a list of strings)."""
    return rest_rule(name, priority, "Allow", source, port, destination, "*", description=ALLOW_DESCRIPTION, etag=etag)


def nsg_resource(resource_id, *rules):
    """An NSG as ARM returns it, holding ``rules``."""
    return {"id": resource_id, "name": resource_id.rsplit("/", 1)[1], "properties": {"securityRules": list(rules)}}


def by_id(*resources):
    """``{lower-case id: resource}``, as ``_topology.nsgs_by_id`` indexes NSGs."""
    return {resource["id"].lower(): resource for resource in resources}


# --------------------------------------------------------------------------------------------------
# VM records (``_topology.build_topology`` shape) and JIT policies


def vm_record(nic_nsg=NSG_NIC, subnet_nsg=NSG_SUBNET, ip=VM_IP):
    """web-1 with one NIC: ``ip`` behind ``subnet_nsg`` and ``nic_nsg`` (``None``: no NSG there)."""
    return {
        "id": WEB_VM,
        "name": "web-1",
        "resource_group": "rg-web",
        "location": "westeurope",
        "nics": [{"private_ip": ip, "nic_nsg_id": nic_nsg, "subnet_nsg_id": subnet_nsg, "public_ip": "20.50.0.11"}],
    }


def jit_policy(name, rg="rg-web", location="westeurope", vms=(WEB_VM,)):
    """A JIT policy resource with port 22 for each of ``vms``."""
    return {
        "id": jit_policy_id(name, rg, location),
        "name": name,
        "properties": {"virtualMachines": [{"id": vm, "ports": [{"number": 22}]} for vm in vms]},
    }


# --------------------------------------------------------------------------------------------------
# jit_request results


def opened(vm, port=22, source="127.0.0.1", rules=()):
    """One item of jit_request's ``opened`` list (and of the jit_guard record)."""
    return {
        "vm_id": vm,
        "vm_name": vm.rsplit("/", 1)[1],
        "port": port,
        "source": source,
        "policy_id": "p",
        "end_time_utc": None,
        "private_ips": [VM_IP],
        "nsg_ids": [APP_NSG],
        "nsg_rules": list(rules),
    }


# --------------------------------------------------------------------------------------------------
# nsg_jit_facts (detail=summary) of a large fleet, for the report page's size and render time


def fleet_facts(count, subscriptions=2, groups=100, regions=("westeurope", "northeurope", "eastus", "westus2")):
    """``azure_jit`` facts of ``count`` VMs: 1 in 10 with SSH/RDP open to the Internet (1 in 100 of
    those JIT-protected but bypassed), 1 in 20 unsupported, 1 in 33 tagged ``jit: skip``, 1 in 4 under JIT."""
    subs = ["%08d-0000-0000-0000-000000000001" % (index + 1) for index in range(subscriptions)]
    vms, status = [], {}
    for index in range(count):
        sub, group = subs[index % subscriptions], "rg-app-%03d" % (index % groups)
        windows = index % 3 == 0
        name = "vm-%05d" % index
        jit = "unsupported" if index % 20 == 7 else "configured" if index % 4 == 0 else "not_configured"
        exposure = []
        if index % 10 == 3 and jit != "unsupported":
            bypassed = index % 100 == 3
            rule = {"name": "AllowMgmtAnywhere", "priority": 200, "nsg": "nsg-" + group, "level": "subnet"}
            exposure.append(
                {
                    "port": 3389 if windows else 22,
                    "nic": name + "-nic",
                    "public_ip": "20.%d.%d.%d" % (index // 65536 % 256, index // 256 % 256, index % 256),
                    "exposed": True,
                    "private_only": False,
                    "internet_allowed": True,
                    "admitted_prefixes": ["*"],
                    "jit_protected": bypassed,
                    "jit_bypassed": bypassed,
                    "bypass_rules": [rule] if bypassed else [],
                    "decided_by": {"nsg": rule["nsg"], "rule": rule["name"], "priority": 200, "access": "Allow"},
                }
            )
        vms.append(
            {
                "id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (sub, group, name),
                "name": name,
                "subscription_id": sub,
                "resource_group": group,
                "location": regions[index % len(regions)],
                "os_type": "Windows" if windows else "Linux",
                "tags": {"jit": "skip"} if index % 33 == 5 else {"env": "prod"},
                "jit_status": jit,
                "unsupported_reason": "no network security group on the VM's NICs or subnets" if jit == "unsupported" else None,
                "exposure": exposure,
            }
        )
        status.setdefault(sub, {}).setdefault(jit, 0)
        status[sub][jit] += 1
    total = {key: sum(per.get(key, 0) for per in status.values()) for key in ("configured", "not_configured", "unsupported")}
    return {
        "subscription_id": subs[0],
        "subscription_ids": subs,
        "generated_at": "2026-11-21T10:00:00Z",
        "virtual_machines": vms,
        "summary": {
            "virtual_machines": count,
            "jit_status": total,
            "subscriptions": {sub: {"virtual_machines": sum(per.values()), "jit_status": per} for sub, per in status.items()},
        },
        "stale_rules": [],
        "drift": [],
    }
