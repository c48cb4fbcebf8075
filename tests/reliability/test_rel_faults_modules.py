"""Faults injected by armsim against each module: 429 storms with Retry-After, transient 500/503,
connection resets, latency spikes, a long-running deletion that ends Failed, persistent errors.

Transient faults within the retry budget (several kinds at once, on different operations): the
task succeeds and armsim's state is exactly what a fault-free run gives. Persistent faults: a
clean failure whose msg names the cause (operation, HTTP status, ARM code, request id) and no
half-applied state: each policy's entries are fully written or untouched, and every allow rule
left behind is named in the result (``opened`` after a failed open, ``still_open`` after a
failed close) so that jit_guard or the user can close it.

All scenarios are task groups of ONE ansible-playbook run (see reltools.scenario); the tests
below assert each scenario's result, stats and state.
"""

import pytest
from harness import run_playbook
from reltools import (
    ADMIN_ENV,
    assert_clean_failure,
    assert_entries_whole,
    assert_no_secret,
    deny_layout,
    jit_rules,
    outcome,
    policies,
    policy_key,
    requests_of,
    scenario,
    vm,
    vm_id,
    without_rule_names,
)

ARMSIM_SEED = "reliability.yaml"
APP_POLICY = policy_key("rg-app", "westeurope")
DB_POLICY = policy_key("rg-db", "northeurope")
SOURCE = "203.0.113.9"
PERSISTENT_503 = {"status": 503, "retry_after": 1, "times": -1}
DEFAULT_LINUX = ((22, "TCP", ("*",), "PT3H"),)


def module_task(module, args):
    return {"jitaccess.azure." + module: args}


POLICY_ARGS = {"virtual_machines": [vm("app-4", "rg-app"), vm("db-2", "rg-db")]}
OPEN_ARGS = {"virtual_machines": [vm("app-1", "rg-app"), vm("db-1", "rg-db")], "ports": [22], "source_address_prefixes": [SOURCE], "duration": "30m"}
CLOSE_VMS = [vm("app-1", "rg-app"), vm("app-3", "rg-app"), vm("db-1", "rg-db")]
CLOSE_ARGS = {"virtual_machines": CLOSE_VMS, "ports": [22], "state": "absent"}
OPENER = module_task("jit_request", dict(OPEN_ARGS, virtual_machines=CLOSE_VMS))

# sid -> (module, args, faults, setup tasks, expected to succeed)
SCENARIOS = {
    "policy transient storm": (
        "jit_policy",
        POLICY_ARGS,
        [
            {"method": "PUT", "path_contains": "jitNetworkAccessPolicies", "status": 429, "retry_after": 1, "times": 2},
            {"method": "GET", "path_contains": "jitNetworkAccessPolicies/default", "status": 500, "times": 1},
            {"method": "GET", "path_contains": "virtualMachines", "kind": "reset", "times": 1},
            {"method": "POST", "path_contains": "oauth2", "status": 503, "retry_after": 1, "times": 1},
            {"path_contains": "", "kind": "latency", "latency_ms": 300, "times": 4},
        ],
        (),
        True,
    ),
    "policy persistent 503 on db PUT": (
        "jit_policy",
        POLICY_ARGS,
        [dict(PERSISTENT_503, method="PUT", path_contains="rg-db/providers/Microsoft.Security")],
        (),
        False,
    ),
    "open transient storm": (
        "jit_request",
        OPEN_ARGS,
        [
            {"method": "POST", "path_contains": "initiate", "status": 429, "retry_after": 1, "times": 1},
            {"method": "POST", "path_contains": "rg-db/providers/Microsoft.Security", "status": 503, "times": 1},
            {"method": "GET", "path_contains": "networkSecurityGroups", "status": 500, "times": 2},
            {"method": "GET", "path_contains": "virtualMachines", "kind": "reset", "times": 1},
            {"method": "POST", "path_contains": "initiate", "kind": "latency", "latency_ms": 1000, "times": 1},
        ],
        (),
        True,
    ),
    "open persistent 503 on db initiate": (
        "jit_request",
        OPEN_ARGS,
        [dict(PERSISTENT_503, method="POST", path_contains="rg-db/providers/Microsoft.Security")],
        (),
        False,
    ),
    "open reset on initiate": ("jit_request", OPEN_ARGS, [{"method": "POST", "path_contains": "initiate", "kind": "reset", "times": 1}], (), False),
    "open 403 while waiting": (
        "jit_request",
        OPEN_ARGS,
        [{"method": "GET", "path_contains": "networkSecurityGroups/nsg-", "status": 403, "code": "AuthorizationFailed", "times": -1}],
        (),
        False,
    ),
    "close transient storm": (
        "jit_request",
        CLOSE_ARGS,
        [
            {"method": "DELETE", "path_contains": "securityRules", "status": 429, "retry_after": 1, "times": 1},
            {"method": "DELETE", "path_contains": "nsg-db/securityRules", "kind": "reset", "times": 1},
            {"method": "GET", "path_contains": "operation", "status": 503, "retry_after": 1, "times": 1},
            {"method": "GET", "path_contains": "networkSecurityGroups", "status": 500, "times": 1},
            {"path_contains": "", "kind": "latency", "latency_ms": 300, "times": 4},
        ],
        True,
        True,
    ),
    "close lro failed on nsg-db": (
        "jit_request",
        CLOSE_ARGS,
        [{"method": "DELETE", "path_contains": "nsg-db/securityRules", "kind": "lro_failed", "times": 1}],
        True,
        False,
    ),
    "close persistent 503 on one DELETE": (
        "jit_request",
        CLOSE_ARGS,
        [dict(PERSISTENT_503, method="DELETE", path_contains="nsg-app3-nic/securityRules")],
        True,
        False,
    ),
    "facts baseline": ("nsg_jit_facts", {}, [], (), True),
    "facts transient storm": (
        "nsg_jit_facts",
        {},
        [
            {"method": "GET", "path_contains": "networkInterfaces", "status": 429, "retry_after": 1, "times": 2},
            {"method": "GET", "path_contains": "jitNetworkAccessPolicies", "status": 500, "times": 1},
            {"method": "GET", "path_contains": "networkSecurityGroups", "kind": "reset", "times": 1},
            {"method": "GET", "path_contains": "", "kind": "latency", "latency_ms": 400, "times": 4},
        ],
        (),
        True,
    ),
    "facts persistent 403 on public IPs": (
        "nsg_jit_facts",
        {},
        [{"method": "GET", "path_contains": "publicIPAddresses", "status": 403, "code": "AuthorizationFailed", "times": -1}],
        (),
        False,
    ),
}


@pytest.fixture(scope="module")
def runs(armsim_server):
    sim = armsim_server
    sim.reset()
    seed_state = sim.state()
    tasks = []
    for sid, (module, args, faults, setup, _ok) in SCENARIOS.items():
        setup_tasks = [dict(OPENER, name="%s open" % sid)] if setup else []
        tasks += scenario(sim, sid, module_task(module, args), faults=faults, setup=setup_tasks)
    run = run_playbook(sim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], env=ADMIN_ENV)
    assert_no_secret(sim.info["client_secret"], run.stdout, run.stderr)
    return run, seed_state


def _ok(sid, result):
    assert not result.get("failed"), (sid, result.get("msg"))


def test_jit_policy_faults(runs, ledger):
    run, seed_state = runs
    before = policies(seed_state)
    wanted = {APP_POLICY: vm_id("rg-app", "app-4").lower(), DB_POLICY: vm_id("rg-db", "db-2").lower()}

    result, stats, state = outcome(run, "policy transient storm")
    _ok("storm", result)
    after = policies(state)
    assert_entries_whole(ledger, before, after)
    for policy_id, new_vm in wanted.items():
        assert after[policy_id][new_vm] == DEFAULT_LINUX
    assert stats["by_operation"]["PUT jitNetworkAccessPolicies"] == 4  # 2 policies + 2 throttled attempts
    assert {rule["destination"] for rule in jit_rules(state, "deny")} >= {"10.1.0.7", "10.2.0.5"}

    result, stats, state = outcome(run, "policy persistent 503 on db PUT")
    msg = assert_clean_failure(result, "write JIT policy", "rg-db", "HTTP 503", "ServiceUnavailable", "request id")
    after = policies(state)
    assert_entries_whole(ledger, before, after)
    assert after[DB_POLICY] == before[DB_POLICY], msg  # untouched
    app = after[APP_POLICY]  # written before the db policy, or not at all: whole either way
    assert app in (before[APP_POLICY], dict(before[APP_POLICY], **{wanted[APP_POLICY]: DEFAULT_LINUX}))
    ledger.add(cases=2, faults=2)


def test_jit_request_open_faults(runs, ledger):
    run, seed_state = runs
    before = policies(seed_state)

    result, stats, state = outcome(run, "open transient storm")
    _ok("storm", result)
    assert_entries_whole(ledger, before, policies(state))
    # one request per policy and VM, one allow rule on each NSG of each path, nothing doubled
    assert sorted((r[1].rsplit("/", 1)[1], r[3], r[4]) for r in requests_of(state)) == [("app-1", (SOURCE,), "Initiated"), ("db-1", (SOURCE,), "Initiated")]
    assert [(r["nsg"], r["destination"], r["sources"]) for r in jit_rules(state)] == [("nsg-app", "10.1.0.4", [SOURCE]), ("nsg-db", "10.2.0.4", [SOURCE])]
    assert sorted(item["vm_name"] for item in result["opened"]) == ["app-1", "db-1"]

    for sid, needles in (
        ("open persistent 503 on db initiate", ("initiate", "rg-db", "HTTP 503", "ServiceUnavailable", "request id")),
        ("open reset on initiate", ("initiate", "Connection aborted")),
        ("open 403 while waiting", ("read network security group", "HTTP 403", "AuthorizationFailed", "request id")),
    ):
        result, stats, state = outcome(run, sid)
        assert_clean_failure(result, *needles)
        assert_entries_whole(ledger, before, policies(state))
        # No orphan: every live request and allow rule is reported in `opened`, and the task is
        # marked changed when something is live, so that jit_guard records and closes it.
        reported = {(item["vm_name"], item["port"]) for item in result.get("opened") or []}
        live_rules = {({"10.1.0.4": "app-1", "10.2.0.4": "db-1"}[r["destination"]], 22) for r in jit_rules(state)}
        live_requests = {(r[1].rsplit("/", 1)[1], r[2]) for r in requests_of(state)}
        assert live_rules <= reported and live_requests == reported, (sid, live_rules, live_requests, reported)
        assert bool(result.get("changed")) == bool(reported), sid
    assert reported == {("app-1", 22), ("db-1", 22)}  # the 403 came after both initiates
    ledger.add(cases=4, faults=4)


def test_jit_request_close_faults(runs, ledger):
    run, seed_state = runs
    before = policies(seed_state)
    denies = deny_layout(seed_state)
    for sid in ("close transient storm", "close lro failed on nsg-db", "close persistent 503 on one DELETE"):
        opened = run.result("%s open" % sid)
        assert not opened.get("failed") and len(opened["opened"]) == 3, (sid, opened.get("msg"))
        result, stats, state = outcome(run, sid)
        assert_entries_whole(ledger, before, policies(state))
        assert deny_layout(state) == denies, sid  # deny rules never touched
        rules = jit_rules(state)
        if sid == "close transient storm":
            _ok(sid, result)
            assert rules == []
            assert stats["by_operation"].get("POST initiate", 0) == 0
            # app-1: nsg-app; app-3: nsg-app + nsg-app3-nic; db-1: nsg-db -> 4 rules
            assert sorted((c["vm_name"], len(c["nsg_rules"])) for c in result["closed"]) == [("app-1", 1), ("app-3", 2), ("db-1", 1)]
            continue
        msg = assert_clean_failure(result, "delete JIT allow rule", "request id")
        # exactly one rule could not be deleted; the others were; the one left is named
        assert len(rules) == 1, (sid, rules)
        assert rules[0]["name"] in msg and rules[0]["nsg"] in msg, msg
        if "503" in sid:
            assert "HTTP 503" in msg and "ServiceUnavailable" in msg and "still open" in msg, msg
            assert [item["name"] for item in result["still_open"]] == [rules[0]["name"]]
            assert len(result["deleted_rules"]) == 3
        else:
            assert "lro_failed" in msg or "InternalServerError" in msg, msg
    ledger.add(cases=3, faults=3)


def test_nsg_jit_facts_faults(runs, ledger):
    run, seed_state = runs
    baseline = run.result("facts baseline")["ansible_facts"]["azure_jit"]
    assert baseline["summary"]["virtual_machines"] == 9
    assert baseline["summary"]["jit_status"]["configured"] == 4
    result, stats, state = outcome(run, "facts transient storm")
    _ok("storm", result)
    assert stats["writes"] == 0
    facts = result["ansible_facts"]["azure_jit"]
    assert facts["summary"] == baseline["summary"]
    assert without_rule_names(facts["virtual_machines"]) == without_rule_names(baseline["virtual_machines"])

    result, stats, state = outcome(run, "facts persistent 403 on public IPs")
    assert_clean_failure(result, "public IP", "HTTP 403", "AuthorizationFailed", "request id")
    assert stats["writes"] == 0
    assert policies(state) == policies(seed_state)
    ledger.add(cases=2, faults=2)
