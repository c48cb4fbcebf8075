"""Faults against the roles: jit_fleet (enforce) and jit_access (open in a block, close in always).

Transient faults on several operations at once: the role succeeds and armsim's state is what a
fault-free run gives (fleet: every candidate under JIT, other entries intact; access: the
hosts' ports answered through armsim's gates, then every allow rule was closed). Persistent
faults: the role fails cleanly (the failing task's msg names the operation, status, ARM code and
request id), no policy is half-written, and after the play no allow rule is left open.
"""

import pytest
from harness import run_playbook
from reltools import (
    ADMIN_ENV,
    admin_task,
    assert_clean_failure,
    assert_entries_whole,
    assert_no_secret,
    deny_layout,
    jit_rules,
    policies,
    policy_key,
    requests_of,
    vm_id,
)
from roles_support import write_inventory

ARMSIM_SEED = "reliability.yaml"
ARMSIM_OPTIONS = {"apply_delay": 0.5}
APP_POLICY = policy_key("rg-app", "westeurope")
DB_POLICY = policy_key("rg-db", "northeurope")
CANDIDATES = {("rg-app", "app-4"), ("rg-app", "app-5"), ("rg-app", "win-1"), ("rg-db", "db-2")}
HOSTS = [("app-1", "rg-app"), ("app-3", "rg-app"), ("db-1", "rg-db")]

FLEET = {
    "fleet transient storm": [
        {"method": "PUT", "path_contains": "jitNetworkAccessPolicies", "status": 429, "retry_after": 1, "times": 2},
        {"method": "GET", "path_contains": "networkInterfaces", "status": 500, "times": 1},
        {"method": "GET", "path_contains": "jitNetworkAccessPolicies", "kind": "reset", "times": 1},
        {"path_contains": "", "kind": "latency", "latency_ms": 300, "times": 4},
    ],
    "fleet persistent 503 on db PUT": [{"method": "PUT", "path_contains": "rg-db/providers/Microsoft.Security", "status": 503, "retry_after": 1, "times": -1}],
}
ACCESS = {
    "access transient storm": [
        {"method": "POST", "path_contains": "initiate", "status": 503, "times": 1},
        {"method": "GET", "path_contains": "networkSecurityGroups/nsg-", "status": 429, "retry_after": 1, "times": 1},
        {"method": "DELETE", "path_contains": "securityRules", "kind": "reset", "times": 1},
        {"path_contains": "", "kind": "latency", "latency_ms": 300, "times": 4},
    ],
    "access persistent 503 on db initiate": [
        {"method": "POST", "path_contains": "rg-db/providers/Microsoft.Security", "status": 503, "retry_after": 1, "times": -1}
    ],
}


def arm(sim, sid, faults):
    return admin_task(sim, [("POST", "/reset", {}), ("POST", "/stats/reset", {})] + [("POST", "/faults", fault) for fault in faults], "%s arm" % sid)


def after(sim, sid):
    return admin_task(sim, [("GET", "/stats"), ("GET", "/state"), ("DELETE", "/faults")], "%s after" % sid)


def fleet_play(sim, sid, faults, report_dir):
    role = {
        "ansible.builtin.include_role": {"name": "jitaccess.azure.jit_fleet"},
        "vars": {"jit_fleet_mode": "enforce", "jit_fleet_resource_groups": ["rg-app", "rg-db"], "jit_fleet_report_dir": report_dir},
    }
    return {
        "name": sid,
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            arm(sim, sid, faults),
            {
                "block": [role, {"name": "%s done" % sid, "ansible.builtin.debug": {"var": "jit_fleet_report"}}],
                "rescue": [{"name": "%s failure" % sid, "ansible.builtin.debug": {"var": "ansible_failed_result"}}],
            },
            after(sim, sid),
        ],
    }


def access_play(sim, sid, faults):
    return {
        "name": sid,
        "hosts": "targets",
        "gather_facts": False,
        "vars": {"jit_access_ports": [22], "jit_access_duration": "30m", "jit_access_port_search_regex": "^armsim", "jit_access_port_timeout": 20},
        "tasks": [
            arm(sim, sid, faults),
            {
                "block": [
                    {"ansible.builtin.include_role": {"name": "jitaccess.azure.jit_access", "tasks_from": "open"}},
                    {"name": "%s opened" % sid, "ansible.builtin.debug": {"msg": "configured"}},
                ],
                "rescue": [{"name": "%s failure" % sid, "ansible.builtin.debug": {"var": "ansible_failed_result"}}],
                "always": [{"ansible.builtin.include_role": {"name": "jitaccess.azure.jit_access", "tasks_from": "close"}}],
            },
            after(sim, sid),
        ],
    }


@pytest.fixture(scope="module")
def runs(armsim_server, tmp_path_factory):
    sim = armsim_server
    sim.reset()
    seed_state = sim.state()
    tmp = tmp_path_factory.mktemp("roles")
    inventory = write_inventory(sim, str(tmp / "inventory.ini"), HOSTS)
    plays = [fleet_play(sim, sid, faults, str(tmp / sid.replace(" ", "-"))) for sid, faults in FLEET.items()]
    plays += [access_play(sim, sid, faults) for sid, faults in ACCESS.items()]
    run = run_playbook(sim, plays, env=ADMIN_ENV, inventory=inventory)
    assert_no_secret(sim.info["client_secret"], run.stdout, run.stderr)
    return run, seed_state, tmp


def responses(run, sid):
    stats, state, _cleared = run.result("%s after" % sid)["responses"]
    return stats, state


def test_jit_fleet_faults(runs, ledger):
    run, seed_state, tmp = runs
    before = policies(seed_state)
    wanted = {vm_id(group, name).lower() for group, name in CANDIDATES}

    sid = "fleet transient storm"
    report = run.result("%s done" % sid)["jit_fleet_report"]
    stats, state = responses(run, sid)
    after_policies = policies(state)
    assert_entries_whole(ledger, before, after_policies)
    present = set(after_policies[APP_POLICY]) | set(after_policies[DB_POLICY])
    assert wanted <= present
    assert report["coverage"]["after"]["configured"] == report["coverage"]["after"]["eligible"] == 8
    assert stats["by_operation"]["PUT jitNetworkAccessPolicies"] == 4  # one per policy + 2 throttled
    assert (tmp / "fleet-transient-storm" / "jit_fleet_report.json").exists()

    sid = "fleet persistent 503 on db PUT"
    failure = run.result("%s failure" % sid)["ansible_failed_result"]
    assert_clean_failure(failure, "write JIT policy", "rg-db", "HTTP 503", "ServiceUnavailable", "request id")
    stats, state = responses(run, sid)
    after_policies = policies(state)
    assert_entries_whole(ledger, before, after_policies)
    assert after_policies[DB_POLICY] == before[DB_POLICY]
    app_new = set(after_policies[APP_POLICY]) - set(before[APP_POLICY])
    assert app_new in (set(), {vm_id("rg-app", name).lower() for name in ("app-4", "app-5", "win-1")})
    assert not (tmp / "fleet-persistent-503-on-db-PUT" / "jit_fleet_report.json").exists()  # no report of a failed rollout
    ledger.add(cases=2, faults=2)


def test_jit_access_faults(runs, ledger):
    run, seed_state, _tmp = runs
    before = policies(seed_state)
    denies = deny_layout(seed_state)

    sid = "access transient storm"
    opened = [entry for entry in run.results if entry["task"] == "%s opened" % sid]
    assert sorted(entry["host"] for entry in opened) == ["app-1", "app-3", "db-1"]
    stats, state = responses(run, sid)
    assert jit_rules(state) == []  # closed in always
    assert deny_layout(state) == denies
    assert_entries_whole(ledger, before, policies(state))
    assert sorted(r[1].rsplit("/", 1)[1] for r in requests_of(state)) == ["app-1", "app-3", "db-1"]
    assert stats["by_operation"]["DELETE securityRules"] == 5  # app-1 1, app-3 2, db-1 1 + the reset one retried

    sid = "access persistent 503 on db initiate"
    # run_once: the failure is every host's, ansible_failed_result is set on the host that ran it
    failures = [entry["result"]["ansible_failed_result"] for entry in run.results if entry["task"] == "%s failure" % sid]
    failures = [item for item in failures if isinstance(item, dict)]
    assert len(failures) == 1, "the open did not fail once"
    failure = failures[0]
    assert_clean_failure(failure, "initiate", "rg-db", "HTTP 503", "ServiceUnavailable", "request id")
    # the rg-app request went through before the rg-db one failed: reported, then closed by always
    assert sorted(item["vm_name"] for item in failure["opened"]) == ["app-1", "app-3"]
    stats, state = responses(run, sid)
    assert jit_rules(state) == []
    assert deny_layout(state) == denies
    assert_entries_whole(ledger, before, policies(state))
    ledger.add(cases=2, faults=2)
