"""jit_fleet role (through playbooks/enable_jit_fleet.yml): audit writes nothing; enforce writes one
PUT per changed policy; a second enforce run writes nothing; the JSON and Markdown reports."""

import json
import os

from harness import run_playbook
from roles_support import PLAYBOOKS, jit_rules

ARMSIM_SEED = "roles_fleet.yaml"
PLAYBOOK = os.path.join(PLAYBOOKS, "enable_jit_fleet.yml")
COMMON = {"jit_fleet_exclude_tags": {"jit": "skip"}, "jit_fleet_exclude_name_patterns": ["*-TEST"]}
CANDIDATES = ["db-2", "web-1", "web-2", "win-1", "win-2"]


def fleet(armsim, tmp_path, **variables):
    extra = dict(COMMON, jit_fleet_report_dir=str(tmp_path), **variables)
    run = run_playbook(armsim, PLAYBOOK, extra_vars=extra)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    with open(tmp_path / "jit_fleet_report.json", encoding="utf-8") as stream:
        report = json.load(stream)
    return run, report, (tmp_path / "jit_fleet_report.md").read_text()


def policy_vms(armsim):
    return {
        policy["id"].split("/resourceGroups/")[1].split("/")[0]: sorted(vm["id"].rsplit("/", 1)[1] for vm in policy["properties"]["virtualMachines"])
        for policy in armsim.state()["jit_policies"]
    }


def test_audit_reports_and_writes_nothing(armsim, tmp_path):
    run, report, markdown = fleet(armsim, tmp_path)
    assert armsim.stats()["writes"] == 0
    assert policy_vms(armsim) == {"rg-db": ["db-1"]}
    assert report["mode"] == "audit" and report["policies_written"] == 0 and not report["changed"]
    assert sorted(vm["name"] for vm in report["candidates"]) == CANDIDATES
    skipped = {vm["name"]: vm["reason"] for vm in report["skipped"]}
    assert set(skipped) == {"bare-1", "web-3", "web-test"}
    assert skipped["bare-1"].startswith("unsupported: no network security group")
    assert skipped["web-3"] == "excluded by tag jit=skip"
    assert skipped["web-test"] == "name excluded by pattern *-TEST"
    assert report["coverage"]["before"] == report["coverage"]["after"]
    assert report["coverage"]["before"]["configured"] == 1 and report["coverage"]["before"]["eligible"] == 8
    # Exposure: web-1 has a public IP and SSH from anywhere; bare-1 has no NSG at all and a Standard
    # public IP, closed to the Internet unless an NSG allows it: open only inside the network.
    exposed = {(item["vm"], item["port"]) for item in report["exposures"] if not item["private_only"]}
    inside = {(item["vm"], item["port"]) for item in report["exposures"] if item["private_only"]}
    assert ("web-1", 22) in exposed and ("bare-1", 22) in inside and ("bare-1", 22) not in exposed
    assert "# JIT fleet report — audit" in markdown and "nothing was written to Azure" in markdown
    assert "| bare-1 | rg-web | unsupported: no network security group" in markdown
    assert "JIT fleet audit: 1/8 eligible VMs under JIT before" in run.stdout


def test_scope_and_name_patterns(armsim, tmp_path):
    _run, report, _markdown = fleet(armsim, tmp_path, jit_fleet_resource_groups=["rg-win", "rg-web"], jit_fleet_name_patterns=["win-?", "web-[12]"])
    assert sorted(vm["name"] for vm in report["candidates"]) == ["win-1", "win-2"]  # [12] is literal, not a class
    reasons = {vm["name"]: vm["reason"] for vm in report["skipped"]}
    assert reasons["web-1"] == "name matches none of win-?, web-[12]"
    assert "db-1" not in reasons and all(vm["resource_group"] != "rg-db" for vm in report["candidates"])
    assert armsim.stats()["writes"] == 0


def test_enforce_writes_one_put_per_policy_and_rerun_writes_nothing(armsim, tmp_path):
    denies_before = jit_rules(armsim, "deny")
    _run, report, markdown = fleet(armsim, tmp_path, jit_fleet_mode="enforce")
    ops = armsim.stats()["by_operation"]
    assert ops.get("PUT jitNetworkAccessPolicies") == 3  # rg-web, rg-win (new), rg-db (db-2 added)
    assert armsim.stats()["writes"] == 3
    # The fleet is listed once: jit_policy and the read after reuse the first read's file; NSGs
    # and JIT policies, which the writes change, are listed again. Three policies are read with one
    # list before the writes and verified with one after (not two GETs each).
    assert [ops.get("GET " + kind) for kind in ("virtualMachines", "networkInterfaces", "virtualNetworks", "publicIPAddresses")] == [1, 1, 1, 1]
    assert ops.get("GET networkSecurityGroups") == 2 and ops.get("GET jitNetworkAccessPolicies") == 4, ops
    assert policy_vms(armsim) == {"rg-db": ["db-1", "db-2"], "rg-web": ["web-1", "web-2"], "rg-win": ["win-1", "win-2"]}
    windows = [vm for vm in armsim.state()["jit_policies"] if "/rg-win/" in vm["id"]][0]["properties"]["virtualMachines"]
    assert sorted(port["number"] for port in windows[0]["ports"]) == [3389, 5985, 5986]
    assert len(jit_rules(armsim, "deny")) > len(denies_before)
    assert report["changed"] and report["policies_written"] == 3
    assert report["coverage"]["after"]["configured"] == 6 and report["coverage"]["after"]["percent"] == 75.0
    assert {(item["vm"], item["port"]) for item in report["bypasses"]} == {("web-1", 22), ("web-2", 22)}
    assert report["bypasses"][0]["bypass_rules"][0]["name"] == "AllowSshAnywhere"
    assert "Enforce mode: 3 JIT policies written." in markdown and "AllowSshAnywhere (priority 200 on nsg-web)" in markdown

    armsim.reset_stats()
    _run, again, markdown = fleet(armsim, tmp_path, jit_fleet_mode="enforce")
    assert armsim.stats()["writes"] == 0
    assert not again["changed"] and again["policies_written"] == 0 and again["candidates"] == []
    assert again["coverage"]["before"]["configured"] == 6
    assert "(nothing to change)" in markdown


def test_reports_are_owner_only_in_a_new_directory_and_an_existing_one_keeps_its_mode(armsim, tmp_path):
    fresh = tmp_path / "new" / "reports"
    run = run_playbook(armsim, PLAYBOOK, extra_vars=dict(COMMON, jit_fleet_report_dir=str(fresh)))
    assert run.rc == 0, run.stdout[-3000:]
    assert oct(os.stat(fresh).st_mode & 0o777) == "0o700"
    assert {name: oct(os.stat(fresh / name).st_mode & 0o777) for name in os.listdir(fresh)} == {
        "jit_fleet_report.json": "0o600",
        "jit_fleet_report.md": "0o600",
        "jit_fleet_report.html": "0o600",
    }
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    run = run_playbook(armsim, PLAYBOOK, extra_vars=dict(COMMON, jit_fleet_report_dir=str(shared), jit_fleet_report_mode="0640"))
    assert run.rc == 0, run.stdout[-3000:]
    assert oct(os.stat(shared).st_mode & 0o777) == "0o755"  # not the role's to change
    assert oct(os.stat(shared / "jit_fleet_report.json").st_mode & 0o777) == "0o640"  # the user's choice


def test_check_mode_writes_nothing_to_azure_or_to_the_report_directory(armsim, tmp_path):
    """--check with enforce: the plan is computed and shown, nothing is written anywhere (the report
    directory is not even created), and the run succeeds."""
    before = policy_vms(armsim)
    armsim.reset_stats()
    reports = tmp_path / "new-reports"
    run = run_playbook(armsim, PLAYBOOK, extra_vars=dict(COMMON, jit_fleet_report_dir=str(reports), jit_fleet_mode="enforce"), check=True)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert not reports.exists() and policy_vms(armsim) == before
    writes = {op: n for op, n in armsim.stats()["by_operation"].items() if not op.startswith("GET")}
    assert writes == {}, writes
    (written,) = [r for r in run.results if r["task"].endswith("Write the report as JSON, Markdown and HTML")]
    assert written["result"]["changed"] and [os.path.basename(f["path"]) for f in written["result"]["files"]] == [
        "jit_fleet_report.json",
        "jit_fleet_report.md",
        "jit_fleet_report.html",
    ]
    assert "JIT fleet enforce" in run.stdout
