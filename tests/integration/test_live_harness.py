"""The live suite's path, proven in CI: `make test-live` run against armsim through environment
variables only (AZURE_*, the CA bundle, JITACCESS_LIVE_*), exactly as a user runs it against a real
subscription - tests/live never imports armsim nor calls its admin API. Afterwards armsim is as it
was: the suite removed the policy entry it added and closed the access it opened."""

import os
import subprocess

from harness import ROOT, ansible_env

ARMSIM_SEED = "jit_request.yaml"
SUB = "00000000-0000-0000-0000-000000000001"


def vm_id(name):
    return "/subscriptions/%s/resourceGroups/rg-jit/providers/Microsoft.Compute/virtualMachines/%s" % (SUB, name)


def rules_and_entries(state):
    rules = sorted(
        (nsg["name"], rule["name"], rule["properties"]["priority"]) for nsg in state["network_security_groups"] for rule in nsg["properties"]["securityRules"]
    )
    entries = sorted(vm["id"].lower() for policy in state["jit_policies"] for vm in policy["properties"]["virtualMachines"])
    return rules, entries


def test_make_test_live_runs_against_armsim_from_the_environment_only(armsim):
    for name in os.listdir(os.path.join(ROOT, "tests", "live")):
        if name.endswith(".py"):
            with open(os.path.join(ROOT, "tests", "live", name), encoding="utf-8") as stream:
                assert "armsim" not in stream.read().replace("armsim's admin API", ""), name  # environment only
    before = rules_and_entries(armsim.state())
    armsim.reset_stats()
    env = ansible_env(armsim, {"JITACCESS_LIVE_VMS": ",".join([vm_id("both-1"), vm_id("nopolicy-1")]), "JITACCESS_LIVE_SOURCE": "203.0.113.7"})
    env.pop("RECORD_RESULTS_PATH", None)
    run = subprocess.run(["make", "-s", "-C", ROOT, "test-live"], check=False, capture_output=True, text=True, env=env, timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
    stats = armsim.stats()["by_operation"]
    assert stats.get("PUT jitNetworkAccessPolicies", 0) == 2  # nopolicy-1 put under JIT, then taken out
    assert stats.get("POST initiate", 0) == 1
    assert rules_and_entries(armsim.state()) == before  # left as found
