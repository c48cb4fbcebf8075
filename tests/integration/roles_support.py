"""Helpers for the role, jit_guard and end-to-end tests: inventories of armsim VMs, JIT rules in state."""

from __future__ import annotations

import os
import socket
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(ROOT, "playbooks")
ALLOW_PREFIXES = ("microsoftdefenderforcloud-jitrule-", "securitycenter-jitrule-")
DENY_PREFIXES = ("microsoftdefenderforcloud-jitrule_", "securitycenter-jitrule_")


def vm_id(sim, resource_group, name):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (sim.info["subscription_id"], resource_group, name)


def jit_rules_in_state(state, kind="allow"):
    """JIT rules in a state dump: dicts with nsg, name, destination, ports, sources, priority."""
    prefixes = ALLOW_PREFIXES if kind == "allow" else DENY_PREFIXES
    found = []
    for nsg in state["network_security_groups"]:
        for rule in nsg["properties"].get("securityRules", []):
            if not rule["name"].lower().startswith(prefixes):
                continue
            props = rule["properties"]
            found.append(
                {
                    "nsg": nsg["name"],
                    "name": rule["name"],
                    "priority": props["priority"],
                    "destination": props.get("destinationAddressPrefix") or ",".join(props.get("destinationAddressPrefixes", [])),
                    "ports": [props["destinationPortRange"]] if props.get("destinationPortRange") else list(props.get("destinationPortRanges", [])),
                    "sources": [props["sourceAddressPrefix"]] if props.get("sourceAddressPrefix") else list(props.get("sourceAddressPrefixes", [])),
                }
            )
    return sorted(found, key=lambda rule: (rule["nsg"], rule["destination"], rule["name"]))


def jit_rules(sim, kind="allow"):
    """:func:`jit_rules_in_state` of armsim's current state."""
    return jit_rules_in_state(sim.state(), kind)


def all_rule_names(sim):
    return sorted((nsg["name"], rule["name"]) for nsg in sim.state()["network_security_groups"] for rule in nsg["properties"].get("securityRules", []))


def write_inventory(sim, path, hosts, group="targets", extra=""):
    """``hosts``: (name, resource_group[, host vars dict]). Each host is local, carries ``id`` and,
    when armsim has a gate for its port 22, ``ansible_host``/``ansible_port`` of that gate."""
    gates = sim.info.get("gates", {})
    lines = ["[%s]" % group]
    for entry in hosts:
        name, resource_group = entry[0], entry[1]
        hostvars = dict(entry[2]) if len(entry) > 2 else {}
        hostvars.setdefault("ansible_connection", "local")
        hostvars.setdefault("ansible_python_interpreter", sys.executable)
        hostvars.setdefault("id", vm_id(sim, resource_group, name))
        if "%s:22" % name in gates:
            hostvars.setdefault("ansible_host", "127.0.0.1")
            hostvars.setdefault("ansible_port", gates["%s:22" % name])
        lines.append(name + " " + " ".join("%s=%s" % item for item in hostvars.items()))
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n" + extra)
    return path


def gate_open(port):
    """True when armsim's data-plane gate on ``port`` admits us (its banner comes); a denied
    connection is closed at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.settimeout(5)
        try:
            data = conn.recv(64)
        except (ConnectionResetError, TimeoutError):
            return False
    return data.startswith(b"armsim")


def gate_admits(sim, vm, port=22):
    """:func:`gate_open` for the gate of ``vm``'s ``port``."""
    return gate_open(sim.gates()["%s:%d" % (vm, port)]["listen_port"])
