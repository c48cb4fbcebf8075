"""Every module's EXAMPLES block, run as written through real ansible-playbook against armsim.

The EXAMPLES are read from the *installed* collection (what ``ansible-doc`` shows a user), one play
per module, all three plays in one ansible-playbook run against seeds/examples.yaml, which holds
every resource the examples name. The plays run in the order a user meets the modules on a live
subscription: the read-only report first (its example asserts that nothing is exposed), then
access requests (they need the seeded policies), then policy changes (the last example takes web-1
out of JIT). Every example task must succeed; the outcomes are then checked in armsim's state.
"""

import ast
import json
import os

import yaml
from harness import collections_path, run_playbook

ARMSIM_SEED = "examples.yaml"

SUB = "00000000-0000-0000-0000-000000000001"
ORDER = ["nsg_jit_facts", "jit_request", "jit_policy", "jit_fleet_report_files"]
# Variables an example takes from the play, as a user's play would define them.
PLAY_VARS = {
    "jit_policy": {
        "candidates": [
            {"name": "web-1", "resource_group": "rg-web"},
            {"name": "legacy-1", "resource_group": "rg-web"},
            {"name": "db-1", "resource_group": "rg-db"},
        ]
    }
}


def installed_modules():
    return os.path.join(collections_path(), "ansible_collections", "jitaccess", "azure", "plugins", "modules")


def examples_of(path):
    """The EXAMPLES string of a module file, without importing it."""
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "EXAMPLES" for t in node.targets):
            return node.value.value
    raise AssertionError("%s has no EXAMPLES" % path)


def leaf_tasks(tasks):
    """Names of the tasks that run when nothing fails, in order (blocks: block, then always)."""
    names = []
    for task in tasks:
        if "block" in task:
            names += leaf_tasks(task["block"]) + leaf_tasks(task.get("always", []))
        else:
            names.append(task["name"])
    return names


def vm_id(name, rg):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def policy_id(rg, location="westeurope"):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/default"


def allow_rules(state):
    """{(private ip, port, source)} of every JIT allow rule in armsim."""
    found = set()
    for nsg in state["network_security_groups"]:
        for rule in nsg["properties"]["securityRules"]:
            props = rule["properties"]
            if props["access"] != "Allow" or not rule["name"].startswith("MicrosoftDefenderForCloud-JITRule"):
                continue
            for port in props.get("destinationPortRanges") or [props.get("destinationPortRange")]:
                for src in props.get("sourceAddressPrefixes") or [props.get("sourceAddressPrefix")]:
                    found.add((props["destinationAddressPrefix"], int(port), src))
    return found


def test_every_module_has_runnable_examples():
    """A new module must join this test (ORDER) with its EXAMPLES runnable against the seed."""
    modules = sorted(f[:-3] for f in os.listdir(installed_modules()) if f.endswith(".py") and not f.startswith("_"))
    assert modules == sorted(ORDER)


def test_examples_run_as_written(armsim, tmp_path):
    plays, expected = [], []
    play_vars = dict(PLAY_VARS, jit_fleet_report_files={"report_dir": str(tmp_path)})
    for module in ORDER:
        tasks = yaml.safe_load(examples_of(os.path.join(installed_modules(), module + ".py")))
        assert isinstance(tasks, list) and tasks, module
        plays.append({"name": "EXAMPLES of " + module, "hosts": "localhost", "gather_facts": False, "vars": play_vars.get(module, {}), "tasks": tasks})
        expected += [(module, name) for name in leaf_tasks(tasks)]

    run = run_playbook(armsim, plays)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert [(r["task"], r["status"]) for r in run.results] == [(name, "ok") for _module, name in expected], run.stdout[-4000:]
    results = {}
    for (module, name), record in zip(expected, run.results, strict=True):
        results[module, name] = record["result"]

    def result(module, prefix):
        (match,) = [r for (m, name), r in results.items() if m == module and name.startswith(prefix)]
        return match

    # nsg_jit_facts: the whole subscription, nothing exposed, the bypass on other-1 found, no drift
    report = result("nsg_jit_facts", "Report the whole subscription")["ansible_facts"]["azure_jit"]
    assert report["summary"]["exposed_ports"] == 0 and len(report["virtual_machines"]) == 9
    assert result("nsg_jit_facts", "List VMs JIT does not protect")["msg"] == [vm_id("app-1", "rg-app"), vm_id("web-2", "rg-web")]
    assert "other-1:22 opened by AllowSshToOther1" in result("nsg_jit_facts", "List every bypassed port")["msg"]
    assert result("nsg_jit_facts", "Show drift")["ansible_facts.azure_jit.drift"] == []
    prod = result("nsg_jit_facts", "Report production web servers")["ansible_facts"]["azure_jit"]["virtual_machines"]
    assert [v["name"] for v in prod] == ["web-1"]
    two = result("nsg_jit_facts", "Report two VMs")["ansible_facts"]["azure_jit"]["virtual_machines"]
    assert sorted(v["name"] for v in two) == ["db-1", "web-1"]

    # jit_request: every open opened, the pattern closed what it opened, the last example closed db-1
    first = result("jit_request", "Open SSH on two VMs")
    assert first["changed"] and sorted((o["vm_name"], o["port"]) for o in first["opened"]) == [("db-1", 22), ("web-1", 22)]
    pattern = result("jit_request", "Open SSH for the build agent")
    assert [(o["vm_name"], o["port"], o["source"]) for o in pattern["opened"]] == [("web-1", 22, "203.0.113.7")]
    closed = result("jit_request", "Close access now")["closed"]
    assert [(c["vm_name"], c["port"], c["source"]) for c in closed] == [("web-1", 22, "203.0.113.7")]
    winrm = result("jit_request", "Open WinRM on one VM and RDP")
    assert sorted((o["vm_name"], o["port"], o["source"]) for o in winrm["opened"]) == [("win-1", 5986, "198.51.100.0/28"), ("win-2", 3389, "198.51.100.0/28")]
    bastion = result("jit_request", "Open access for the Azure Bastion")  # the purge below deletes its rule
    assert [(o["vm_name"], o["port"], o["source"]) for o in bastion["opened"]] == [("other-2", 3389, "10.9.1.0/26")]
    plan = result("jit_request", "What would be opened")  # web-1 was closed by the pattern
    assert plan["changed"] and [(o["vm_name"], o["port"], o["nsg_rules"]) for o in plan["opened"]] == [("web-1", 22, [])]
    assert [(c["vm_name"], c["port"]) for c in result("jit_request", "Close every JIT access")["closed"]] == [("db-1", 22)]

    # jit_policy: web-1 already had the defaults, app-1 got a new policy; the preview skipped legacy-1 and wrote nothing; purge left web-1 alone in rg-web's
    # policy and the last example took it out, so that policy is gone
    first = {p["id"]: p["action"] for p in result("jit_policy", "Put two VMs under JIT")["policies"]}
    assert first == {policy_id("rg-web"): "unchanged", policy_id("rg-app"): "created"}
    preview = result("jit_policy", "Preview a fleet rollout")
    assert [s["name"] for s in preview["skipped_virtual_machines"]] == ["legacy-1"]
    (purged,) = result("jit_policy", "Make the policy of rg-web")["policies"]
    assert purged["id"] == policy_id("rg-web") and [e["id"] for e in purged["virtual_machines"]] == [vm_id("web-1", "rg-web")]
    assert purged["changes"]["removed"] == sorted(vm_id(n, "rg-web").lower() for n in ("other-1", "other-2", "web-2"))
    assert purged["changes"]["changed"] == [vm_id("web-1", "rg-web").lower()]  # back to the OS default ports
    (auto,) = result("jit_policy", "Allow SSH only from the Azure Bastion")["policies"]
    assert auto["changes"]["changed"] == [vm_id("app-1", "rg-app").lower()]
    assert auto["virtual_machines"][0]["ports"][0]["allowed_source_address_prefixes"] == ["10.9.1.0/26"]
    assert not result("jit_policy", "Allow access only from a named Bastion host")["changed"]  # the same Bastion

    # jit_fleet_report_files: the audit report's three files (owner-only) and the Markdown page alone (group-readable)
    written = result("jit_fleet_report_files", "Write the audit report")["files"]
    assert [(f["format"], f["path"], f["changed"]) for f in written] == [
        (fmt, str(tmp_path / ("jit_audit." + ext)), True) for fmt, ext in (("json", "json"), ("markdown", "md"), ("html", "html"))
    ]
    modes = {name: oct(os.stat(tmp_path / name).st_mode & 0o777) for name in os.listdir(tmp_path)}
    assert modes == {"jit_audit.json": "0o600", "jit_audit.md": "0o600", "jit_audit.html": "0o600", "jit_audit_page.md": "0o640"}
    with open(tmp_path / "jit_audit.json", encoding="utf-8") as stream:
        audit = json.load(stream)
    assert audit["mode"] == "audit" and audit["policies_written"] == 0 and audit["candidates"]
    assert "# JIT fleet report — audit" in (tmp_path / "jit_audit_page.md").read_text(encoding="utf-8")

    # armsim's state: what the examples left behind, and nothing else
    state = armsim.state()
    policies = {p["id"].lower(): [v["id"].lower() for v in p["properties"]["virtualMachines"]] for p in state["jit_policies"]}
    assert policies == {
        policy_id("rg-app").lower(): [vm_id("app-1", "rg-app").lower()],
        policy_id("rg-db", "northeurope").lower(): [vm_id("db-1", "rg-db").lower()],
        policy_id("rg-win").lower(): [vm_id("win-1", "rg-win").lower(), vm_id("win-2", "rg-win").lower()],
    }
    # still open: win-1 and win-2; web-1 was closed by the pattern, db-1 by the last example
    assert allow_rules(state) == {("10.4.0.4", 5986, "198.51.100.0/28"), ("10.4.0.5", 3389, "198.51.100.0/28")}
    stats = armsim.stats()["by_operation"]
    # one initiate per policy per opening example (2 + 1 + 1 + 1); policy writes: rg-app, rg-web twice, rg-app (Bastion), then the DELETE
    assert stats.get("POST initiate") == 5 and stats.get("PUT jitNetworkAccessPolicies") == 4 and stats.get("DELETE jitNetworkAccessPolicies") == 1
