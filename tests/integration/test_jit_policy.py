"""jit_policy through real ansible-playbook runs against armsim; outcomes asserted in armsim's state.

Seed (seeds/jit_policy.yaml): rg-web/westeurope has a "default" policy holding other-1 and other-2;
web-1 sits behind a NIC NSG and a subnet NSG; legacy-1 has no NSG; rg-app (westeurope) and rg-data
(northeurope, plus db-2 in westeurope) have no policy yet.
"""

import copy
import io
import json
import re
import sys
import threading
import time

from harness import run_module, run_playbook

ARMSIM_SEED = "jit_policy.yaml"

SUB = "00000000-0000-0000-0000-000000000001"
PUT = "PUT jitNetworkAccessPolicies"
DELETE = "DELETE jitNetworkAccessPolicies"
DENY_NAME = re.compile(r"^MicrosoftDefenderForCloud-JITRule_-?\d+_[0-9A-F]{32}$")


def vm_id(name, rg="rg-web"):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def policy_id(rg="rg-web", location="westeurope", name="default"):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/{name}"


def vm(name, rg="rg-web", **extra):
    return dict({"name": name, "resource_group": rg}, **extra)


def policies(state):
    return {p["id"].lower(): p for p in state["jit_policies"]}


def policy_vms(state, pid=None):
    """VM entries of a policy in armsim, keyed by lower-cased VM id ({} when the policy is absent)."""
    policy = policies(state).get((pid or policy_id()).lower())
    return {} if policy is None else {entry["id"].lower(): entry for entry in policy["properties"]["virtualMachines"]}


def nsg_rules(state, name):
    nsg = next(n for n in state["network_security_groups"] if n["name"] == name)
    return nsg["properties"]["securityRules"]


def deny_rules(state, nsg, vm_name, policy="default"):
    return [
        rule
        for rule in nsg_rules(state, nsg)
        if rule["properties"]["access"] == "Deny"
        and rule["properties"].get("description") == f"MDC JIT Network Access rule for policy '{policy}' of VM '{vm_name}'."
    ]


def ports_of(rule):
    props = rule["properties"]
    return sorted(int(p) for p in (props.get("destinationPortRanges") or [props.get("destinationPortRange")]))


def ops(stats, name):
    return stats["by_operation"].get(name, 0)


# --------------------------------------------------------------------------------------------------


def test_merge_into_shared_policy_per_vm_ports_deny_rules_and_idempotency(armsim):
    seed_state = armsim.state()
    seed_entries = policy_vms(seed_state)
    args = {
        "virtual_machines": [
            vm("web-1"),
            {
                "id": vm_id("web-2"),
                "ports": [
                    {"number": 22, "allowed_source_address_prefixes": ["203.0.113.0/24", "198.51.100.7"], "max_request_access_duration": "1h"},
                    {"number": 8443, "protocol": "UDP", "max_request_access_duration": "90m"},
                ],
            },
            vm("win-1"),
            vm("app-1", "rg-app"),
        ]
    }
    result = run_module(armsim, "jit_policy", args)
    stats = armsim.stats()
    state = armsim.state()

    assert result["changed"] is True
    assert ops(stats, PUT) == 2 and stats["writes"] == 2  # one PUT per affected policy, nothing else written
    # constant discovery: one list per kind; one GET + one verifying GET per policy
    assert ops(stats, "GET virtualMachines") == 1 and ops(stats, "GET networkInterfaces") == 1 and ops(stats, "GET virtualNetworks") == 1
    assert ops(stats, "GET jitNetworkAccessPolicies") == 4
    by_id = {p["id"]: p for p in result["policies"]}
    assert by_id[policy_id()]["action"] == "updated" and by_id[policy_id("rg-app")]["action"] == "created"
    assert by_id[policy_id()]["changes"]["added"] == sorted(vm_id(n).lower() for n in ("web-1", "web-2", "win-1"))

    entries = policy_vms(state)
    # VMs the task did not name survive byte-for-byte
    for key, entry in seed_entries.items():
        assert entries[key] == entry
    assert len(entries) == 5
    # OS-aware defaults and the per-VM override
    assert entries[vm_id("web-1").lower()]["ports"] == [
        {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
    ]
    assert [p["number"] for p in entries[vm_id("win-1").lower()]["ports"]] == [3389, 5985, 5986]
    web2 = {p["number"]: p for p in entries[vm_id("web-2").lower()]["ports"]}
    assert web2[22]["allowedSourceAddressPrefixes"] == ["198.51.100.7", "203.0.113.0/24"] and web2[22]["maxRequestAccessDuration"] == "PT1H"
    assert web2[8443]["protocol"] == "UDP" and web2[8443]["maxRequestAccessDuration"] == "PT1H30M"
    assert [p["number"] for p in policy_vms(state, policy_id("rg-app"))[vm_id("app-1", "rg-app").lower()]["ports"]] == [22]

    # Deny rules as Azure places them: one per VM per NSG on its path, after overlapping rules
    for nsg in ("nsg-web-subnet", "nsg-web-nic"):
        (rule,) = deny_rules(state, nsg, "web-1")
        props = rule["properties"]
        assert DENY_NAME.match(rule["name"]), rule["name"]
        assert props["direction"] == "Inbound" and props["protocol"] == "*" and props["sourceAddressPrefix"] == "*"
        assert props["destinationAddressPrefix"] == "10.1.0.4" and ports_of(rule) == [22]
    subnet_deny = deny_rules(state, "nsg-web-subnet", "web-1")[0]["properties"]["priority"]
    assert 200 < subnet_deny <= 4096  # after AllowSshFromCorp (200), which overlaps port 22 and so bypasses JIT
    # empty NSG: armsim's default placement ("top priority", from 1000 up); nothing depends on the number
    assert deny_rules(state, "nsg-web-nic", "web-1")[0]["properties"]["priority"] == 1000
    assert ports_of(deny_rules(state, "nsg-web-subnet", "web-2")[0]) == [22, 8443]
    assert ports_of(deny_rules(state, "nsg-web-subnet", "win-1")[0]) == [3389, 5985, 5986]
    assert deny_rules(state, "nsg-web-subnet", "win-1")[0]["properties"]["destinationAddressPrefix"] == "10.1.0.6"
    assert len(deny_rules(state, "nsg-app", "app-1")) == 1
    assert len(deny_rules(state, "nsg-web-subnet", "other-1")) == 1  # the untouched VMs keep theirs

    # Same input spelled differently (PT60M, 5400s, other case, prefixes reordered): no change, zero writes
    armsim.reset_stats()
    again = copy.deepcopy(args)
    again["virtual_machines"][1]["id"] = vm_id("web-2").upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")
    again["virtual_machines"][1]["ports"][0].update(allowed_source_address_prefixes=["198.51.100.7", "203.0.113.0/24"], max_request_access_duration="PT60M")
    again["virtual_machines"][1]["ports"][1]["max_request_access_duration"] = "5400s"
    result = run_module(armsim, "jit_policy", again)
    assert result["changed"] is False
    assert all(p["action"] == "unchanged" for p in result["policies"])
    assert armsim.stats()["writes"] == 0
    assert armsim.state()["jit_policies"] == state["jit_policies"]


def test_check_mode_and_diff(armsim):
    seed_state = armsim.state()
    args = {"virtual_machines": [vm("web-1"), vm("db-1", "rg-data")], "ports": [{"number": 22, "allowed_source_address_prefix": "10.0.0.0/8"}]}
    result = run_module(armsim, "jit_policy", args, check=True, diff=True)
    assert result["changed"] is True
    assert armsim.stats()["writes"] == 0
    assert armsim.state() == seed_state

    diffs = {d["after_header"]: d for d in result["diff"]}
    assert set(diffs) == {policy_id(), policy_id("rg-data", "northeurope")}
    web = diffs[policy_id()]
    assert [e["id"] for e in web["before"]["virtual_machines"]] == [vm_id("other-1").lower(), vm_id("other-2").lower()]
    assert [e["id"] for e in web["after"]["virtual_machines"]] == [vm_id("other-1").lower(), vm_id("other-2").lower(), vm_id("web-1").lower()]
    assert web["after"]["virtual_machines"][2]["ports"][0]["allowedSourceAddressPrefix"] == "10.0.0.0/8"
    assert diffs[policy_id("rg-data", "northeurope")]["before"] == {"virtual_machines": []}
    assert "+++ after: " + policy_id() in result["_run"].stdout  # rendered by Ansible as a per-policy diff
    actions = {p["id"]: p["action"] for p in result["policies"]}
    assert actions == {policy_id(): "updated", policy_id("rg-data", "northeurope"): "created"}

    # check mode for a VM already as asked: changed false, still no writes
    result = run_module(
        armsim,
        "jit_policy",
        {"virtual_machines": [{"id": vm_id("other-2"), "ports": [{"number": 3389, "protocol": "*", "max_request_access_duration": "2h"}]}]},
        check=True,
    )
    assert result["changed"] is False and armsim.stats()["writes"] == 0


def test_absent_then_policy_deleted_when_empty(armsim):
    assert len(deny_rules(armsim.state(), "nsg-web-subnet", "other-1")) == 1
    plays = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "remove other-1", "jitaccess.azure.jit_policy": {"virtual_machines": [vm("other-1")], "state": "absent"}},
                {"name": "remove other-2", "jitaccess.azure.jit_policy": {"virtual_machines": [{"id": vm_id("other-2").lower()}], "state": "absent"}},
                {"name": "remove again", "jitaccess.azure.jit_policy": {"virtual_machines": [vm("other-1"), vm("other-2")], "state": "absent"}},
            ],
        }
    ]
    run = run_playbook(armsim, plays)
    assert run.rc == 0, run.stdout + run.stderr
    first, second, third = run.result("remove other-1"), run.result("remove other-2"), run.result("remove again")
    assert first["changed"] and first["policies"][0]["action"] == "updated"
    assert [e["id"] for e in first["policies"][0]["virtual_machines"]] == [vm_id("other-2")]
    assert second["changed"] and second["policies"][0]["action"] == "deleted" and second["policies"][0]["virtual_machines"] == []
    assert third["changed"] is False and third["policies"][0]["action"] == "unchanged"
    stats = armsim.stats()
    assert ops(stats, PUT) == 1 and ops(stats, DELETE) == 1 and stats["writes"] == 2
    state = armsim.state()
    assert state["jit_policies"] == []
    for name in ("other-1", "other-2"):
        assert deny_rules(state, "nsg-web-subnet", name) == []
    assert {r["name"] for r in nsg_rules(state, "nsg-web-subnet")} == {"AllowHttps", "AllowSshFromCorp"}


def test_three_resource_groups_two_regions_one_put_per_policy_and_skip_unsupported(armsim):
    args = {
        "virtual_machines": [vm("web-1"), vm("web-2"), vm("legacy-1"), vm("app-1", "rg-app"), vm("db-1", "rg-data"), vm("db-2", "rg-data")],
        "ports": [{"number": 22, "max_request_access_duration": "2h"}, {"number": 3389, "allowed_source_address_prefixes": ["10.0.0.0/8"]}],
        "skip_unsupported": True,
    }
    result = run_module(armsim, "jit_policy", args)
    stats = armsim.stats()
    expected = {policy_id(), policy_id("rg-app"), policy_id("rg-data", "northeurope"), policy_id("rg-data", "westeurope")}
    assert {p["id"] for p in result["policies"]} == expected
    assert ops(stats, PUT) == 4 and stats["writes"] == 4
    assert ops(stats, "GET virtualMachines") == 1
    assert result["skipped_virtual_machines"] == [
        {"id": vm_id("legacy-1"), "name": "legacy-1", "resource_group": "rg-web", "reason": "no network security group on any NIC or subnet of the VM"}
    ]
    state = armsim.state()
    assert {p["id"] for p in state["jit_policies"]} == expected
    assert vm_id("legacy-1").lower() not in policy_vms(state)
    db2 = policy_vms(state, policy_id("rg-data", "westeurope"))[vm_id("db-2", "rg-data").lower()]
    assert [(p["number"], p["maxRequestAccessDuration"]) for p in db2["ports"]] == [(22, "PT2H"), (3389, "PT3H")]
    assert ports_of(deny_rules(state, "nsg-data-we", "db-2")[0]) == [22, 3389]
    assert ports_of(deny_rules(state, "nsg-data", "db-1")[0]) == [22, 3389]


def test_a_refused_write_in_a_batch_reports_exactly_the_policies_written_side_by_side(armsim):
    """Four policies are a batch: their PUTs go side by side. One refused: the failure names it, and
    the result lists the policies written (in flight or before), which are exactly armsim's."""
    armsim.fault(method="PUT", path_contains="resourceGroups/rg-app/", status=403, code="AuthorizationFailed", message="No write on rg-app.")
    args = {"virtual_machines": [vm("web-1"), vm("web-2"), vm("app-1", "rg-app"), vm("db-1", "rg-data"), vm("db-2", "rg-data")], "detail": "summary"}
    result = run_module(armsim, "jit_policy", args, expect_failure=True)
    assert "AuthorizationFailed" in result["msg"] and "rg-app" in result["msg"] and "Traceback" not in result["msg"]
    written = {p["id"].lower() for p in result["policies"]}
    assert policy_id("rg-app").lower() not in written
    state = armsim.state()
    assert policy_id("rg-app").lower() not in policies(state)
    in_state = {pid.lower() for pid in (policy_id("rg-data", "northeurope"), policy_id("rg-data", "westeurope")) if pid.lower() in policies(state)}
    if vm_id("web-2").lower() in policy_vms(state):  # rg-web's policy existed: written when web-2 joined it
        in_state.add(policy_id().lower())
    assert written == in_state, (written, in_state)
    assert result["changed"] is (len(written) > 0)
    assert armsim.stats()["writes"] == len(written) + 1  # the refused PUT, and no write after it was known


def test_ports_by_os_type_for_a_mixed_fleet_by_id_with_a_summary_result(armsim):
    """The jit_fleet role's call shape: VMs by id only, port rules once per OS type, detail summary."""
    args = {
        "virtual_machines": [{"id": vm_id("web-2")}, {"id": vm_id("win-1")}, {"id": vm_id("db-2", "rg-data")}, vm("app-1", "rg-app", ports=[{"number": 8022}])],
        "ports_by_os_type": {
            "Linux": [{"number": 2222, "allowed_source_address_prefix": "10.0.0.0/8"}],
            "windows": [{"number": 5986, "max_request_access_duration": "1h"}],
        },
        "detail": "summary",
    }
    result = run_module(armsim, "jit_policy", args)
    assert result["changed"] and armsim.stats()["writes"] == 3  # rg-web, rg-app and rg-data (westeurope) policies
    web = next(p for p in result["policies"] if p["id"] == policy_id())
    assert "virtual_machines" not in web and web["virtual_machine_count"] == 4  # other-1 and other-2 kept
    assert web["changes"]["added"] == sorted([vm_id("web-2").lower(), vm_id("win-1").lower()])
    state = armsim.state()
    entries = policy_vms(state)
    assert [(p["number"], p.get("allowedSourceAddressPrefix")) for p in entries[vm_id("web-2").lower()]["ports"]] == [(2222, "10.0.0.0/8")]
    assert [(p["number"], p["maxRequestAccessDuration"]) for p in entries[vm_id("win-1").lower()]["ports"]] == [(5986, "PT1H")]
    db2 = policy_vms(state, policy_id("rg-data", "westeurope"))[vm_id("db-2", "rg-data").lower()]
    assert [p["number"] for p in db2["ports"]] == [5986]
    app1 = policy_vms(state, policy_id("rg-app"))[vm_id("app-1", "rg-app").lower()]
    assert [p["number"] for p in app1["ports"]] == [8022]  # the VM's own ports win
    assert ports_of(deny_rules(state, "nsg-web-subnet", "win-1")[0]) == [5986]
    armsim.reset_stats()
    again = run_module(armsim, "jit_policy", args)
    assert not again["changed"] and armsim.stats()["writes"] == 0
    bad = run_module(armsim, "jit_policy", dict(args, ports_by_os_type={"macOS": [{"number": 22}]}), expect_failure=True)
    assert "unknown OS type 'macOS': allowed Linux, Windows" in bad["msg"] and armsim.stats()["writes"] == 0


def test_concurrent_writer_is_detected_and_repaired(armsim):
    """Another writer PUTs a stale list (read before our write) between our PUT and our verifying GET."""
    _cred, security, _network, _compute = armsim.sdk_clients()
    stale = copy.deepcopy(armsim.state()["jit_policies"][0])  # what the other writer read: the seed policy
    theirs = {"id": vm_id("web-2"), "ports": [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}]}
    stale_body = {"kind": "Basic", "properties": {"virtualMachines": [*stale["properties"]["virtualMachines"], theirs]}}
    security.jit_network_access_policies.get("rg-web", "westeurope", "default")  # the other writer has its token already
    armsim.reset_stats()
    # Both of our GETs of the policy are slowed; the verifying one then reads after the stale PUT.
    armsim.fault(kind="latency", method="GET", path_contains="jitNetworkAccessPolicies/default", latency_ms=3000, times=2)
    done = {}

    def other_writer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if vm_id("web-1").lower() in policy_vms(armsim.state()):  # our first PUT has landed
                security.jit_network_access_policies.create_or_update("rg-web", "westeurope", "default", io.BytesIO(json.dumps(stale_body).encode()))
                done["at"] = time.monotonic()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=other_writer)
    thread.start()
    result = run_module(armsim, "jit_policy", {"virtual_machines": [vm("web-1")]})
    thread.join()
    assert "at" in done, "the concurrent writer never ran"
    (policy,) = result["policies"]
    assert policy["attempts"] == 2
    assert any("another writer replaced it" in w for w in result.get("warnings", []))
    assert ops(armsim.stats(), PUT) == 3  # ours, theirs, our repair
    entries = policy_vms(armsim.state())
    assert set(entries) == {vm_id(n).lower() for n in ("other-1", "other-2", "web-2", "web-1")}  # both writers' VMs kept
    assert [e["id"] for e in policy["virtual_machines"]] == [e["id"] for e in armsim.state()["jit_policies"][0]["properties"]["virtualMachines"]]
    assert len(deny_rules(armsim.state(), "nsg-web-nic", "web-1")) == 1


def test_bad_inputs_fail_clearly_with_zero_writes(armsim, tmp_path):
    """One task, one inventory host per bad input (run in parallel forks): each fails with a clear
    message naming the value, and nothing at all is written."""
    one = [vm("web-1")]
    cases = {
        "port 70000": ({"virtual_machines": one, "ports": [{"number": 70000}]}, "port 70000 is out of range: allowed 0-65535"),
        "port -1": ({"virtual_machines": [vm("web-1", ports=[{"number": -1}])]}, "port -1 is out of range: allowed 0-65535"),
        "protocol ICMP": ({"virtual_machines": one, "ports": [{"number": 22, "protocol": "ICMP"}]}, "protocol must be one of: TCP, UDP, *, got: ICMP"),
        "duration 2m": ({"virtual_machines": one, "ports": [{"number": 22, "max_request_access_duration": "2m"}]}, "'2m' (PT2M) is out of range: allowed PT5M"),
        "duration 25h": ({"virtual_machines": one, "ports": [{"number": 22, "max_request_access_duration": "25h"}]}, "to PT24H (24 hours)"),
        "duration garbage": ({"virtual_machines": one, "ports": [{"number": 22, "max_request_access_duration": "soon"}]}, "'soon' is not a valid duration"),
        "prefix 300.1.1.1": (
            {"virtual_machines": one, "ports": [{"number": 22, "allowed_source_address_prefixes": ["300.1.1.1"]}]},
            "'300.1.1.1' is not valid",
        ),
        "prefix /33": ({"virtual_machines": one, "ports": [{"number": 22, "allowed_source_address_prefix": "10.0.0.0/33"}]}, "'10.0.0.0/33' is not valid"),
        "prefix IPv6": (
            {"virtual_machines": one, "ports": [{"number": 22, "allowed_source_address_prefixes": ["2001:db8::/64"]}]},
            "is IPv6, which JIT does not support",
        ),
        "both prefix forms": (
            {"virtual_machines": one, "ports": [{"number": 22, "allowed_source_address_prefix": "*", "allowed_source_address_prefixes": ["10.0.0.0/8"]}]},
            "mutually exclusive",
        ),
        "duplicate port": ({"virtual_machines": one, "ports": [{"number": 22}, {"number": 22, "protocol": "UDP"}]}, "port 22 is listed more than once"),
        "unknown VM": ({"virtual_machines": [vm("web-1"), vm("ghost-9"), {"id": vm_id("ghost-8", "rg-app")}]}, "not found in subscription"),
        "malformed id": ({"virtual_machines": [{"id": "/subscriptions/x/resourceGroups/rg/virtualMachines/web-1"}]}, "is malformed"),
        "duplicate VM": ({"virtual_machines": [vm("web-1"), {"id": vm_id("WEB-1")}]}, "is listed more than once in virtual_machines"),
        "empty list": ({"virtual_machines": []}, "virtual_machines is empty"),
        "unsupported VM": ({"virtual_machines": [vm("web-1"), vm("legacy-1")]}, "legacy-1 (no network security group on any NIC or subnet of the VM)"),
    }
    hosts = {f"case{index:02d}": name for index, name in enumerate(cases)}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "hosts": {host: {"case": cases[name][0]} for host, name in hosts.items()},
                }
            }
        )
    )
    task = {
        "name": "bad input",
        "jitaccess.azure.jit_policy": {
            "virtual_machines": "{{ case.virtual_machines }}",
            "ports": "{{ case.ports | default(omit) }}",
        },
        "ignore_errors": True,
    }
    run = run_playbook(armsim, [{"hosts": "all", "gather_facts": False, "tasks": [task]}], inventory=str(inventory), env={"ANSIBLE_FORKS": "4"})
    recorded = {entry["host"]: entry for entry in run.results}
    assert set(recorded) == set(hosts), run.stdout[-3000:]
    for host, name in hosts.items():
        entry = recorded[host]
        result = entry["result"]
        assert entry["status"] == "failed", (name, entry)
        assert cases[name][1] in result["msg"], (name, result["msg"])
        assert "Traceback" not in result["msg"] and "module_stderr" not in result, (name, result)
    unknown = next(recorded[host]["result"]["msg"] for host, name in hosts.items() if name == "unknown VM")
    assert "ghost-9" in unknown and "ghost-8" in unknown and "/web-1" not in unknown
    stats = armsim.stats()
    assert stats["writes"] == 0, stats["by_operation"]
    assert ops(stats, "GET jitNetworkAccessPolicies") == 0  # every failure happens before the policies are read


def test_throttling_and_transient_errors_are_survived_cloud_errors_are_clean(armsim):
    armsim.fault(method="GET", path_contains="/virtualMachines", status=429, retry_after=1, times=3)
    armsim.fault(method="PUT", path_contains="jitNetworkAccessPolicies", status=503, times=1)
    result = run_module(armsim, "jit_policy", {"virtual_machines": [vm("web-1")]})
    assert result["changed"] is True
    stats = armsim.stats()
    # retried by the SDK, honouring Retry-After
    assert ops(stats, "GET virtualMachines") == 4 and ops(stats, PUT) == 2, (stats, armsim.requests())
    assert vm_id("web-1").lower() in policy_vms(armsim.state())

    armsim.reset()
    seed_policies = armsim.state()["jit_policies"]
    armsim.fault(
        method="PUT", path_contains="jitNetworkAccessPolicies", status=403, code="AuthorizationFailed", message="The client does not have authorization."
    )
    result = run_module(armsim, "jit_policy", {"virtual_machines": [vm("web-1")]}, expect_failure=True)
    assert "HTTP 403" in result["msg"] and "AuthorizationFailed" in result["msg"] and "write JIT policy" in result["msg"]
    assert result["error"]["request_id"] and result["error"]["request_id"] in result["msg"]
    assert "Traceback" not in result["msg"]
    assert armsim.state()["jit_policies"] == seed_policies


def test_failure_on_a_later_policy_reports_the_policies_already_written(armsim):
    # Policies are handled in input order: rg-app first, then rg-data, whose PUT is refused.
    armsim.fault(method="PUT", path_contains="resourceGroups/rg-data/", status=403, code="AuthorizationFailed", message="No write on rg-data.")
    args = {"virtual_machines": [vm("app-1", "rg-app"), vm("db-1", "rg-data")], "detail": "summary"}
    result = run_module(armsim, "jit_policy", args, expect_failure=True)
    assert "AuthorizationFailed" in result["msg"] and "rg-data" in result["msg"]
    assert result["changed"] is True  # rg-app's policy was written before the failure
    assert [(p["id"], p["action"], p["virtual_machine_count"]) for p in result["policies"]] == [(policy_id("rg-app"), "created", 1)]
    state = armsim.state()
    assert vm_id("app-1", "rg-app").lower() in policy_vms(state, policy_id("rg-app"))
    assert policy_id("rg-data", "northeurope").lower() not in policies(state)
    # Nothing written before a failure: changed stays false.
    armsim.reset()
    armsim.fault(method="PUT", path_contains="resourceGroups/rg-app/", status=403, code="AuthorizationFailed", message="No write on rg-app.")
    first = run_module(armsim, "jit_policy", args, expect_failure=True)
    assert first["changed"] is False and first["policies"] == [] and armsim.stats()["writes"] == 1  # the refused PUT only
