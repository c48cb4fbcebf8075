"""nsg_jit_facts through real ansible-playbook runs against armsim.

Seed (seeds/nsg_jit_facts.yaml) has one VM per situation: JIT configured and closed (jit-ok), a
pre-existing allow-from-anywhere rule ahead of JIT's deny (bypass), a JIT allow rule left behind
without a request (stale), a JIT deny rule for a VM in no policy (plain), subnet NSG allows but NIC
NSG denies (subnet-allows) and the reverse (nic-allows), open NSGs without a public IP
(private-open), no NSG at all (no-nsg), a policy VM behind a subnet and a NIC NSG (drift), and a
policy VM to request access for (requested). Expectations are checked against armsim's own state.
"""

import io
import json
import os
import time
from datetime import datetime, timedelta, timezone

from harness import run_module, run_playbook

from armsim.model import stable_uuid

ARMSIM_SEED = "nsg_jit_facts.yaml"

SUB = "00000000-0000-0000-0000-000000000001"
LIST_OPERATIONS = (
    "GET virtualMachines",
    "GET networkInterfaces",
    "GET networkSecurityGroups",
    "GET virtualNetworks",
    "GET publicIPAddresses",
    "GET bastionHosts",
    "GET jitNetworkAccessPolicies",
)
NO_NSG = "no network security group on any NIC or subnet of the VM"


def vm_id(name, rg="rg-facts"):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def nsg_id(name, rg="rg-facts"):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def by_name(facts):
    return {vm["name"]: vm for vm in facts["virtual_machines"]}


def exposure(vm, port):
    (entry,) = [item for item in vm["exposure"] if item["port"] == port]
    return entry


def jit_rules_in_state(state, ip):
    """(nsg name, rule name, access) of every JIT rule in armsim whose destination is ``ip``."""
    found = set()
    for nsg in state["network_security_groups"]:
        for rule in nsg["properties"]["securityRules"]:
            props = rule["properties"]
            destinations = props.get("destinationAddressPrefixes") or [props.get("destinationAddressPrefix")]
            if "JITRule" in rule["name"] and ip in destinations:
                found.add((nsg["name"], rule["name"], props["access"]))
    return found


def facts_of(result):
    assert result["changed"] is False
    assert set(result["ansible_facts"]) == {"azure_jit"}
    return result["ansible_facts"]["azure_jit"]


def test_whole_subscription_report_in_normal_and_check_mode(armsim):
    state = armsim.state()
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "report", "jitaccess.azure.nsg_jit_facts": {}},
                {"name": "report in check mode", "jitaccess.azure.nsg_jit_facts": {}, "check_mode": True},
                {"name": "facts are set", "ansible.builtin.assert": {"that": ["ansible_facts.azure_jit.summary.virtual_machines == 11"]}},
            ],
        }
    ]
    run = run_playbook(armsim, play)
    assert run.rc == 0, run.stdout + run.stderr
    facts = facts_of(run.result("report"))
    checked = facts_of(run.result("report in check mode"))
    for report in (facts, checked):
        report.pop("generated_at")
    assert checked == facts

    # Bulk reads only: the six list operations, once per run (all fit in one page), and the
    # subscription's Defender for Servers plan (one GET); no write.
    stats = armsim.stats()
    assert stats["writes"] == 0
    assert stats["by_operation"] == dict(dict.fromkeys(LIST_OPERATIONS, 2), **{"GET pricings": 2})
    assert facts["defender_for_servers"] == [{"subscription_id": SUB, "pricing_tier": "Standard", "sub_plan": "P2", "jit_available": True}]
    assert facts["summary"]["subscriptions_without_jit"] == []

    vms = by_name(facts)
    assert sorted(vms) == sorted(vm["name"] for vm in state["virtual_machines"])
    assert {name: vm["jit_status"] for name, vm in vms.items()} == {
        "jit-ok": "configured",
        "bypass": "configured",
        "stale": "configured",
        "drift": "configured",
        "requested": "configured",
        "plain": "not_configured",
        "nic-allows": "not_configured",
        "subnet-allows": "not_configured",
        "private-open": "not_configured",
        "other-1": "not_configured",
        "no-nsg": "unsupported",
    }
    assert vms["no-nsg"]["unsupported_reason"] == NO_NSG
    assert all(vm["unsupported_reason"] is None for name, vm in vms.items() if name != "no-nsg")
    assert facts["summary"]["jit_status"] == {"configured": 5, "not_configured": 5, "unsupported": 1}
    assert facts["summary"]["unsupported_reasons"] == {NO_NSG: 1}

    # VM details come from the bulk reads
    ok = vms["jit-ok"]
    assert (ok["location"], ok["os_type"], ok["power_state"], ok["tags"]) == ("westeurope", "Linux", "running", {"env": "prod"})
    assert vms["subnet-allows"]["power_state"] == "deallocated" and vms["other-1"]["location"] == "northeurope"
    (nic,) = ok["nics"]
    state_pip = next(p for p in state["public_ip_addresses"] if p["name"] == "jit-ok-ip")
    assert nic["private_ip"] == "10.1.0.4" and nic["public_ip"] == state_pip["properties"]["ipAddress"]
    assert nic["subnet_nsg"].lower() == nsg_id("nsg-guarded").lower() and nic["nic_nsg"] is None
    assert vms["drift"]["nics"][0]["nic_nsg"].lower() == nsg_id("nsg-drift").lower()
    assert ok["policy"]["name"] == "default" and ok["policy"]["location"] == "westeurope"
    assert ok["ports"] == [{"number": 22, "protocol": "*", "allowed_source_address_prefixes": ["*"], "max_request_access_duration": "PT3H"}]
    # The management ports of each VM's OS (docs/nsg_jit_facts.md, "Exposure semantics").
    assert [item["port"] for item in vms["subnet-allows"]["exposure"]] == [3389, 5985, 5986]  # Windows
    assert [item["port"] for item in vms["private-open"]["exposure"]] == [22]  # Linux: its 3389 is open, nothing listens

    # The JIT rules reported are exactly armsim's JIT rules for each VM's address.
    for vm in vms.values():
        ip = vm["nics"][0]["private_ip"]
        reported = {(rule["nsg"], rule["name"], rule["kind"].capitalize()) for rule in vm["jit_rules"]}
        assert reported == jit_rules_in_state(state, ip), vm["name"]
    assert {(rule["nsg"], rule["kind"]) for rule in vms["drift"]["jit_rules"]} == {("nsg-guarded", "deny"), ("nsg-drift", "deny")}

    # Configured and closed.
    ssh = exposure(ok, 22)
    assert ssh["jit_protected"] and ssh["in_policy"] and not ssh["exposed"] and not ssh["jit_bypassed"]
    assert ssh["decided_by"]["access"] == "Deny" and ssh["decided_by"]["rule"].startswith("MicrosoftDefenderForCloud-JITRule_")

    # An allow-from-anywhere rule placed before JIT's deny: bypassed and exposed through the public IP.
    ssh = exposure(vms["bypass"], 22)
    assert ssh["jit_protected"] and ssh["jit_bypassed"] and ssh["exposed"] and ssh["internet_allowed"]
    assert [(r["nsg"], r["name"], r["priority"], r["level"]) for r in ssh["bypass_rules"]] == [("nsg-guarded", "AllowSshToBypass", 310, "subnet")]
    (deny,) = [rule for rule in vms["bypass"]["jit_rules"] if rule["kind"] == "deny"]
    assert deny["priority"] > 310
    assert ssh["decided_by"] == {"level": "subnet", "nsg": "nsg-guarded", "rule": "AllowSshToBypass", "priority": 310, "access": "Allow"}

    # Subnet NSG allows, NIC NSG denies -> not exposed, the NIC NSG decides; and the reverse.
    rdp = exposure(vms["subnet-allows"], 3389)
    assert not rdp["exposed"] and not rdp["internet_allowed"]
    assert [(level["level"], level["allowed"], level["rule"]) for level in rdp["levels"]] == [
        ("subnet", True, "AllowSshRdpAnywhere"),
        ("nic", False, "DenyAllInBound"),
    ]
    assert rdp["decided_by"]["nsg"] == "nsg-nic-closed"
    ssh = exposure(vms["nic-allows"], 22)
    assert not ssh["exposed"] and ssh["decided_by"] == {"level": "subnet", "nsg": "nsg-guarded", "rule": "DenyAllInBound", "priority": 65500, "access": "Deny"}
    assert ssh["levels"][1]["allowed"] and ssh["levels"][1]["rule"] == "AllowSshAnywhere"

    # Open NSGs but no public IP: private_only, not exposed. No NSG at all: everything admitted.
    entry = exposure(vms["private-open"], 22)
    assert entry["internet_allowed"] and entry["private_only"] and not entry["exposed"]
    assert vms["private-open"]["nics"][0]["public_ip"] is None
    # no NSG and a Standard public IP: closed to the Internet (secure by default), open inside the network
    assert vms["no-nsg"]["nics"][0]["public_ip_sku"] == "Standard"
    assert all(not entry["exposed"] and entry["private_only"] and entry["decided_by"]["nsg"] is None for entry in vms["no-nsg"]["exposure"])

    # Stale rules: the left-behind JIT allow rule (which really opens the port) and the deny for a VM in no policy.
    stale = {(rule["vm_name"], rule["kind"], rule["nsg"]): rule for rule in facts["stale_rules"]}
    assert set(stale) == {("stale", "allow", "nsg-guarded"), ("plain", "deny", "nsg-guarded")}
    assert "without an active access request" in stale[("stale", "allow", "nsg-guarded")]["reason"]
    assert "in no JIT policy" in stale[("plain", "deny", "nsg-guarded")]["reason"]
    ssh = exposure(vms["stale"], 22)
    assert ssh["exposed"] and not ssh["open_by_jit_request"] and not ssh["jit_bypassed"]
    assert ssh["decided_by"]["rule"] == "MicrosoftDefenderForCloud-JITRule-1701-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
    assert facts["drift"] == []

    assert facts["policies"] == [
        {
            "id": f"/subscriptions/{SUB}/resourceGroups/rg-facts/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
            "name": "default",
            "resource_group": "rg-facts",
            "location": "westeurope",
            "virtual_machines": 5,
        }
    ]
    summary = facts["summary"]
    # exposed: bypass:22, stale:22; private only: private-open 22 (no public IP) and no-nsg 22 (no
    # NSG, Standard public IP: closed to the Internet); both are Linux, so 3389/5985/5986 are not listed
    assert (summary["exposed_ports"], summary["exposed_virtual_machines"], summary["private_only_open_ports"]) == (2, 2, 2)
    assert (summary["jit_bypassed_ports"], summary["jit_bypassed_virtual_machines"]) == (1, 1)
    assert (summary["stale_rules"], summary["drift"], summary["active_requests"], summary["open_by_jit_request_ports"]) == (2, 0, 0, 0)
    assert facts["scope"]["whole_subscription"] is True


def _wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met within %ss" % timeout)


def test_drift_after_deny_rule_deletion_and_active_request_with_requestor(armsim):
    # Another tool deletes JIT's deny rule from the NIC NSG of "drift" (as Terraform or purge_rules would).
    state = armsim.state()
    (deny_name,) = [name for nsg, name, access in jit_rules_in_state(state, "10.1.0.9") if nsg == "nsg-drift" and access == "Deny"]
    _cred, _security, network, _compute = armsim.sdk_clients()
    network.security_rules.begin_delete("rg-facts", "nsg-drift", deny_name).result()
    # Alice opens SSH on "requested" from her address; the service writes the allow rules.
    alice = armsim.credential(client_id="00000000-0000-0000-0000-0000000000c2", secret="alice-secret")
    _cred, security, _network, _compute = armsim.sdk_clients(credential=alice)
    end = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    port = {"number": 22, "endTimeUtc": end, "allowedSourceAddressPrefix": "203.0.113.7"}
    body = {"virtualMachines": [{"id": vm_id("requested"), "ports": [port]}], "justification": "patch window"}
    security.jit_network_access_policies.initiate("rg-facts", "westeurope", "default", io.BytesIO(json.dumps(body).encode()))
    _wait_for(lambda: any(access == "Allow" for _nsg, _name, access in jit_rules_in_state(armsim.state(), "10.1.0.10")))
    armsim.reset_stats()

    result = run_module(armsim, "nsg_jit_facts", {"virtual_machines": [{"name": "drift", "resource_group": "rg-facts"}, {"id": vm_id("requested")}]})
    facts = facts_of(result)
    assert armsim.stats()["writes"] == 0
    vms = by_name(facts)
    assert sorted(vms) == ["drift", "requested"]
    assert facts["scope"]["virtual_machines"] == [vm_id("drift"), vm_id("requested")]

    assert facts["drift"] == [
        {
            "vm_id": vm_id("drift"),
            "vm_name": "drift",
            "resource_group": "rg-facts",
            "nsg": "nsg-drift",
            "nsg_id": nsg_id("nsg-drift"),
            "level": "nic",
            "private_ip": "10.1.0.9",
            "missing_ports": [22],
            "reason": "JIT deny rule missing: the port is in the VM's JIT policy but this NSG does not block it",
        }
    ]
    assert [rule["nsg"] for rule in vms["drift"]["jit_rules"]] == ["nsg-guarded"]
    ssh = exposure(vms["drift"], 22)  # still closed: the subnet NSG's deny rule holds
    assert ssh["jit_protected"] and not ssh["exposed"] and ssh["decided_by"]["nsg"] == "nsg-guarded"

    policy = next(p for p in armsim.state()["jit_policies"] if p["name"] == "default")
    (request,) = policy["properties"]["requests"]
    (active,) = vms["requested"]["active_requests"]
    # alice is a service principal: recorded by its object id (its app-only token has no name)
    assert active["requestor"] == request["requestor"] == stable_uuid("principal", "00000000-0000-0000-0000-0000000000c2")
    assert active["justification"] == "patch window" and active["sources"] == ["203.0.113.7"] and active["port"] == 22
    assert active["end_time_utc"][:19] == request["virtualMachines"][0]["ports"][0]["endTimeUtc"][:19]
    allow = [rule for rule in vms["requested"]["jit_rules"] if rule["kind"] == "allow"]
    assert allow and all(not rule["stale"] and rule["sources"] == ["203.0.113.7"] for rule in allow)
    ssh = exposure(vms["requested"], 22)
    assert ssh["exposed"] and ssh["internet_partial"] and ssh["admitted_prefixes"] == ["203.0.113.7"]
    assert ssh["open_by_jit_request"] and not ssh["jit_bypassed"]
    summary = facts["summary"]
    assert (summary["drift"], summary["active_requests"], summary["open_by_jit_request_ports"], summary["exposed_ports"], summary["stale_rules"]) == (
        1,
        1,
        1,
        0,
        0,
    )

    # Once the request has expired the service deletes its allow rule: nothing is left open or stale.
    armsim.advance(3700)
    facts = facts_of(run_module(armsim, "nsg_jit_facts", {"virtual_machines": [{"id": vm_id("requested")}]}))
    (vm,) = facts["virtual_machines"]
    assert vm["active_requests"] == [] and [rule["kind"] for rule in vm["jit_rules"]] == ["deny"]
    assert not exposure(vm, 22)["exposed"] and facts["stale_rules"] == []


def test_scope_filters_and_bad_input(armsim):
    tasks = [
        {"name": "by group", "jitaccess.azure.nsg_jit_facts": {"resource_groups": ["RG-OTHER"]}},
        {"name": "by group and tags", "jitaccess.azure.nsg_jit_facts": {"resource_groups": ["rg-facts"], "tags": {"env": "prod"}}},
        {"name": "by tags", "jitaccess.azure.nsg_jit_facts": {"tags": {"env": "dev"}}},
        {"name": "unknown vm", "jitaccess.azure.nsg_jit_facts": {"virtual_machines": [{"name": "ghost", "resource_group": "rg-facts"}]}, "ignore_errors": True},
        {"name": "bad tag value", "jitaccess.azure.nsg_jit_facts": {"tags": {"env": ["prod"]}}, "ignore_errors": True},
        {
            "name": "id and name",
            "jitaccess.azure.nsg_jit_facts": {"virtual_machines": [{"id": vm_id("plain"), "name": "plain"}]},
            "ignore_errors": True,
        },
    ]
    run = run_playbook(armsim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])

    def names(task):
        return sorted(vm["name"] for vm in facts_of(run.result(task))["virtual_machines"])

    assert names("by group") == ["other-1"]
    assert names("by group and tags") == ["bypass", "drift", "jit-ok", "requested", "stale", "subnet-allows"]
    assert names("by tags") == ["nic-allows", "no-nsg", "other-1", "plain", "private-open"]
    scoped = facts_of(run.result("by group"))
    assert scoped["policies"] == [] and scoped["stale_rules"] == [] and scoped["summary"]["virtual_machines"] == 1

    unknown = run.result("unknown vm")
    assert unknown["failed"] and vm_id("ghost") in unknown["msg"] and "not found" in unknown["msg"]
    bad = run.result("bad tag value")
    assert bad["failed"] and "tag 'env' has value ['prod']" in bad["msg"]
    both = run.result("id and name")
    assert both["failed"] and "mutually exclusive: id|name found in virtual_machines" in both["msg"] and "Traceback" not in both["msg"]
    # Three reports plus the unknown VM (found missing after the bulk reads); the two bad inputs fail before any call.
    stats = armsim.stats()
    assert stats["writes"] == 0
    assert stats["by_operation"] == dict(dict.fromkeys(LIST_OPERATIONS, 4), **{"GET pricings": 3})  # the unknown VM fails before


def test_cloud_error_is_a_clean_failure(armsim):
    armsim.fault(method="GET", path_contains="publicIPAddresses", status=403, times=1)
    result = run_module(armsim, "nsg_jit_facts", {}, expect_failure=True)
    assert result["msg"].startswith("list public IP addresses failed: HTTP 403 ArmsimInjectedFault")
    assert result["error"]["request_id"] in result["msg"]
    assert "Traceback" not in result["msg"] and "ansible_facts" not in result
    assert armsim.stats()["writes"] == 0


def test_a_saved_inventory_is_reused_for_what_jit_writes_do_not_change(armsim, tmp_path):
    """save_inventory writes the lists (0600); reuse_inventory lists only NSGs and JIT policies
    again, with the same verdicts; a file it cannot use is named in a warning and everything is listed."""
    path = str(tmp_path / "inventory.json")
    first = facts_of(run_module(armsim, "nsg_jit_facts", {"save_inventory": path}))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    armsim.reset_stats()
    second = facts_of(run_module(armsim, "nsg_jit_facts", {"reuse_inventory": path}))
    ops = armsim.stats()["by_operation"]
    assert not any(ops.get("GET " + kind) for kind in ("virtualMachines", "networkInterfaces", "virtualNetworks", "publicIPAddresses")), ops
    assert ops.get("GET networkSecurityGroups") == 1 and ops.get("GET jitNetworkAccessPolicies") == 1
    assert second["summary"] == first["summary"] and second["virtual_machines"] == first["virtual_machines"]

    armsim.reset_stats()
    result = run_module(armsim, "nsg_jit_facts", {"reuse_inventory": str(tmp_path / "missing.json")})
    assert any("reuse_inventory: cannot read" in warning and "listing the fleet again" in warning for warning in result["warnings"])
    assert armsim.stats()["by_operation"].get("GET virtualMachines") == 1


def test_facts_file_holds_the_whole_fact_and_the_result_only_the_rest(armsim, tmp_path):
    """facts_file: the fleet-sized lists are written to the file (0600), the same as a normal run
    returns them; the result keeps the summary and names the file. An unwritable path fails cleanly."""
    whole = facts_of(run_module(armsim, "nsg_jit_facts", {}))
    path = str(tmp_path / "facts.json")
    kept = facts_of(run_module(armsim, "nsg_jit_facts", {"facts_file": path}))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path, encoding="utf-8") as stream:
        written = json.load(stream)["azure_jit"]
    assert written["virtual_machines"] == whole["virtual_machines"] and written["summary"] == whole["summary"]
    assert written["drift"] == whole["drift"] and written["stale_rules"] == whole["stale_rules"] and written["policies"] == whole["policies"]
    assert kept["facts_file"] == path and kept["summary"] == whole["summary"]
    assert not {"virtual_machines", "policies", "stale_rules", "drift"} & set(kept)

    failed = run_module(armsim, "nsg_jit_facts", {"facts_file": str(tmp_path / "missing-dir" / "facts.json")}, expect_failure=True)
    assert failed["msg"].startswith("facts_file: cannot write") and "Traceback" not in failed["msg"] and "traceback" not in failed
