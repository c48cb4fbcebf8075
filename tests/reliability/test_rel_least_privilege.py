"""Least privilege: the three documented custom roles (docs/rbac/*.json) are exactly enough.

armsim seeds one principal per role whose ``actions`` allow-list is the role's ``Actions``, loaded
from the docs JSON, so the shipped documentation is what is tested. Every ARM request of those
principals is mapped to its RBAC action by armsim (tools/armsim/rbac.py) and refused with 403
``AuthorizationFailed`` when the role lacks it; a JIT policy PUT also needs
``Microsoft.Compute/virtualMachines/write`` on its VMs, as in Azure.

One ansible-playbook run per principal (credentials from AZURE_CLIENT_ID / AZURE_SECRET):

* jit-configure: jit_policy writes the policy; nsg_jit_facts reports.
* jit-request-and-close: jit_request opens (initiate) and closes (deletes the allow rules);
  jit_policy fails cleanly (AuthorizationFailed naming the action) and writes nothing.
* jit-report-readonly: nsg_jit_facts reports; jit_request fails cleanly with 403, no writes.
"""

import copy
import json
import os

import pytest
import yaml
from harness import run_playbook
from reltools import ADMIN_ENV, admin_task, assert_clean_failure, jit_rules, policies, policy_key, requests_of, state_changes, vm, vm_id

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SEEDS = os.path.join(HERE, "seeds")
RBAC = os.path.join(ROOT, "docs", "rbac")
ROLES = {
    "configure": ("jit-configure.json", "11111111-2222-3333-4444-000000000c01", "rel-Configure-S3cret~value.0003"),
    "request": ("jit-request-and-close.json", "11111111-2222-3333-4444-000000000c02", "rel-Request-S3cret~value.0004"),
    "readonly": ("jit-report-readonly.json", "11111111-2222-3333-4444-000000000c03", "rel-Readonly-S3cret~value.0005"),
}


def role_actions(filename):
    with open(os.path.join(RBAC, filename), encoding="utf-8") as stream:
        role = json.load(stream)
    assert not role.get("NotActions") and not role.get("DataActions"), filename
    return list(role["Actions"])


def _seed():
    with open(os.path.join(SEEDS, "reliability.yaml"), encoding="utf-8") as stream:
        seed = yaml.safe_load(stream)
    seed = copy.deepcopy(seed)
    for name, (filename, client_id, secret) in ROLES.items():
        seed["principals"].append({"client_id": client_id, "client_secret": secret, "name": "jit-" + name, "actions": role_actions(filename)})
    return seed


ARMSIM_SEED = _seed()

POLICY = {"virtual_machines": [vm("app-4", "rg-app")]}
OPEN = {"virtual_machines": [vm("app-1", "rg-app")], "ports": [22], "source_address_prefixes": ["198.51.100.7"], "duration": "15m"}
CLOSE = dict(OPEN, state="absent")
WEST = policy_key("rg-app", "westeurope")


def jit(module, args):
    return {"jitaccess.azure." + module: args, "ignore_errors": True}


def run_as(sim, role, steps):
    """One playbook as ``role``'s principal: per step, zero the counters, run the task (errors
    ignored), then record stats and state as ``<step> after``."""
    _filename, client_id, secret = ROLES[role]
    tasks = []
    for sid, task in steps:
        tasks += [
            admin_task(sim, [("POST", "/stats/reset", {})], "%s arm" % sid),
            dict(task, name=sid),
            admin_task(sim, [("GET", "/stats"), ("GET", "/state")], "%s after" % sid),
        ]
    env = dict(ADMIN_ENV, AZURE_CLIENT_ID=client_id, AZURE_SECRET=secret)
    return run_playbook(sim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], env=env)


def after(run, sid):
    stats, state = run.result("%s after" % sid)["responses"]
    return run.result(sid), stats, state


def no_403(stats):
    assert not stats["by_status"].get("403"), "403 answered: %s" % stats


@pytest.fixture(scope="module")
def seeded(armsim_server):
    armsim_server.reset()
    return armsim_server.state()


def test_configure_role(armsim, seeded, ledger):
    run = run_as(armsim, "configure", [("policy", jit("jit_policy", POLICY)), ("facts", jit("nsg_jit_facts", {}))])
    result, stats, state = after(run, "policy")
    assert not result.get("failed"), result.get("msg")
    assert result.get("changed")
    no_403(stats)
    assert vm_id("rg-app", "app-4").lower() in policies(state)[WEST]
    result, stats, _state = after(run, "facts")
    assert not result.get("failed"), result.get("msg")
    no_403(stats)
    ledger.add(cases=2)


def test_request_and_close_role(armsim, seeded, ledger):
    run = run_as(
        armsim,
        "request",
        [("policy refused", jit("jit_policy", POLICY)), ("open", jit("jit_request", OPEN)), ("close", jit("jit_request", CLOSE))],
    )
    result, stats, state = after(run, "policy refused")
    ledger.add(bad_inputs=1, rejected_writes=state_changes(seeded, state))  # before the asserts: a failure still counts
    assert_clean_failure(result, "HTTP 403", "AuthorizationFailed", "Microsoft.Security/locations/jitNetworkAccessPolicies/write")
    assert stats["by_status"].get("403") == 1
    assert policies(state) == policies(seeded), "a refused jit_policy changed a policy"
    assert jit_rules(state) == jit_rules(seeded)

    result, stats, state = after(run, "open")
    assert not result.get("failed"), result.get("msg")
    assert result.get("changed")
    no_403(stats)
    assert any(entry[1] == vm_id("rg-app", "app-1").lower() for entry in requests_of(state))
    assert jit_rules(state), "no JIT allow rule after the open"

    result, stats, state = after(run, "close")
    assert not result.get("failed"), result.get("msg")
    assert result.get("changed")
    no_403(stats)
    assert jit_rules(state) == [], "JIT allow rules left after the close"
    ledger.add(cases=3)


def test_readonly_role(armsim, seeded, ledger):
    run = run_as(armsim, "readonly", [("facts", jit("nsg_jit_facts", {})), ("open refused", jit("jit_request", OPEN))])
    result, stats, _state = after(run, "facts")
    assert not result.get("failed"), result.get("msg")
    no_403(stats)
    result, stats, state = after(run, "open refused")
    ledger.add(cases=2, bad_inputs=1, rejected_writes=state_changes(seeded, state))  # before the asserts
    assert_clean_failure(result, "HTTP 403", "AuthorizationFailed", "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action")
    assert stats["by_status"].get("403") == 1
    assert stats["writes"] <= 1  # at most the refused initiate reached armsim; it changed nothing
    assert requests_of(state) == requests_of(seeded)
    assert jit_rules(state) == jit_rules(seeded) and policies(state) == policies(seeded)
