"""Small helpers for demo/run.sh: build the seed, read armsim's ready file, probe gates, summarise."""

import json
import socket
import sys

import yaml


def seed(fleet_path, extra_path):
    """Generated fleet + the hand-written demo resource group -> one seed (YAML on stdout)."""
    with open(fleet_path, encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    with open(extra_path, encoding="utf-8") as stream:
        data["resource_groups"].append(yaml.safe_load(stream))
    yaml.safe_dump(data, sys.stdout, sort_keys=False)


def env(ready_path):
    """Shell exports that point the collection at armsim (the secret never reaches the terminal)."""
    with open(ready_path, encoding="utf-8") as stream:
        ready = json.load(stream)
    values = {
        "REQUESTS_CA_BUNDLE": ready["ca_bundle"],
        "SSL_CERT_FILE": ready["ca_bundle"],
        "AZURE_CLOUD_ENVIRONMENT": ready["metadata_url"],
        "AZURE_TENANT": ready["tenant_id"],
        "AZURE_CLIENT_ID": ready["client_id"],
        "AZURE_SECRET": ready["client_secret"],
        "AZURE_SUBSCRIPTION_ID": ready["subscription_id"],
        "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
        "ANSIBLE_AZURE_AUTH_SOURCE": "env",
        "ARMSIM_ADMIN_URL": ready["admin_url"],
    }
    for key, value in values.items():
        print("export %s=%s" % (key, json.dumps(value)))


def inventory(ready_path, out_path):
    """An inventory of the gated demo hosts: local connection, VM id, gate port."""
    with open(ready_path, encoding="utf-8") as stream:
        ready = json.load(stream)
    lines = ["[jit_targets]"]
    for key, port in sorted(ready["gates"].items()):
        name = key.split(":")[0]
        vm_id = "/subscriptions/%s/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/%s" % (ready["subscription_id"], name)
        hostvars = "ansible_connection=local ansible_python_interpreter=%s ansible_host=127.0.0.1 ansible_port=%d id=%s" % (sys.executable, port, vm_id)
        lines.append(name + " " + hostvars)
    with open(out_path, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")


def probe(ready_path):
    """Is each gated host's port 22 reachable from here right now?"""
    with open(ready_path, encoding="utf-8") as stream:
        ready = json.load(stream)
    for key, port in sorted(ready["gates"].items()):
        state = "CLOSED"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.settimeout(2)
                if sock.recv(64).startswith(b"armsim"):
                    state = "OPEN"
        except OSError:
            pass
        print("    %-16s %s" % (key, state))


def summary(out_dir):
    """The rollout in numbers, from the two reports."""
    with open(out_dir + "/audit.json", encoding="utf-8") as stream:
        audit = json.load(stream)
    with open(out_dir + "/enforce.json", encoding="utf-8") as stream:
        enforce = json.load(stream)
    before, after = enforce["coverage"]["before"], enforce["coverage"]["after"]
    print("    VMs in the subscription:        %d" % before["virtual_machines"])
    print(
        "    under JIT before / after:        %d / %d of %d eligible (%.1f%% -> %.1f%%)"
        % (before["configured"], after["configured"], after["eligible"], before["percent"], after["percent"])
    )
    print("    audit: would configure %d VMs, wrote nothing" % len(audit["candidates"]))
    print("    enforce: %d JIT policies written (one PUT per policy)" % enforce["policies_written"])
    print("    skipped: %d VMs, for example:" % len(enforce["skipped"]))
    for vm in enforce["skipped"][:3]:
        print("      - %s (%s): %s" % (vm["name"], vm["resource_group"], vm["reason"]))
    counts = enforce["exposure_counts"]
    print("    reachable from the Internet: %s" % counts["internet"]["text"])
    print("    open to any source inside the network: %s" % counts["inside_network"]["text"])
    print("    JIT bypasses: %d, for example:" % len(enforce["bypasses"]))
    for item in [b for b in enforce["bypasses"] if b["vm"].startswith("demo-")][:1] + enforce["bypasses"][:1]:
        rules = ", ".join("%s (priority %s)" % (rule["name"], rule["priority"]) for rule in item["bypass_rules"])
        print("      - %s port %s: %s admits the Internet before JIT's deny rule" % (item["vm"], item["port"], rules))


def access(admin_url, closed_at):
    """What the pattern opened (the JIT request records) and what is left open now (allow rules)."""
    import urllib.request

    with urllib.request.urlopen(admin_url + "/state", timeout=10) as response:  # noqa: S310 - loopback admin API
        state = json.load(response)
    for policy in state["jit_policies"]:
        if "/resourceGroups/rg-demo/" not in policy["id"]:
            continue
        for request in policy["properties"].get("requests", []):
            for vm in request["virtualMachines"]:
                for port in vm["ports"]:
                    print(
                        "    opened %s:%s from %s at %s by %s (Azure would end it at %s)"
                        % (
                            vm["id"].rsplit("/", 1)[1],
                            port["number"],
                            port.get("allowedSourceAddressPrefix") or port.get("allowedSourceAddressPrefixes"),
                            request["startTimeUtc"][:19],
                            request.get("requestor", "?"),
                            port["endTimeUtc"][:19],
                        )
                    )
    allow = [
        rule["name"]
        for nsg in state["network_security_groups"]
        for rule in nsg["properties"].get("securityRules", [])
        if rule["name"].lower().startswith(("microsoftdefenderforcloud-jitrule-", "securitycenter-jitrule-"))
    ]
    print("    closed by %s: JIT allow rules left on any NSG: %d" % (closed_at, len(allow)))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"seed": seed, "env": env, "inventory": inventory, "probe": probe, "summary": summary, "access": access}[command](*args)
