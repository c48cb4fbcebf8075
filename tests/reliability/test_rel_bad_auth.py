"""Wrong credentials, an expired token, a wrong CA (TLS fails closed), a missing SDK and a
principal without write rights, in ONE ansible-playbook run at -vvvv with jit_guard enabled.

Each case: a clean failure naming the cause, zero ARM writes (the Reader's refused PUT is the
one write attempt armsim counts; it changes nothing). Then a real open with the secret passed as
a module option, closed by jit_guard at the end of the run. No secret — the real one, the wrong
one, the Reader's — appears anywhere in stdout, stderr or the callback's output, even at -vvvv.
"""

import pytest
import trustme
from harness import run_playbook
from reltools import ADMIN_ENV, admin_task, assert_clean_failure, assert_no_secret, jit_rules, policies, vm

ARMSIM_SEED = "reliability.yaml"
# Tokens live 2 s, so a 3.5 s latency on one request makes ARM see an expired token.
ARMSIM_OPTIONS = {"extra_args": ("--token-lifetime", "2")}
SECRET = "rel-Sup3r-S3cret~value.0001"
WRONG_SECRET = "rel-Wr0ng-S3cret~value.9999"
BAD_TENANT = "00000000-0000-0000-0000-00000000beef"
READER_ID = "11111111-2222-3333-4444-666666666666"
READER_SECRET = "rel-Reader-S3cret~value.0002"
GUARD_ENV = dict(ADMIN_ENV, ANSIBLE_CALLBACKS_ENABLED="record_results,jitaccess.azure.jit_guard")


def jit(module, args, **keywords):
    return dict({"jitaccess.azure." + module: args, "ignore_errors": True}, **keywords)


POLICY = {"virtual_machines": [vm("app-4", "rg-app")]}
OPEN = {"virtual_machines": [vm("app-1", "rg-app")], "ports": [22], "source_address_prefixes": ["198.51.100.7"], "duration": "15m"}


def cases(sim, other_ca):
    """case id -> (task, needles, faults)"""
    return {
        "wrong secret": (jit("jit_policy", dict(POLICY, secret=WRONG_SECRET)), ["AADSTS7000215", "Invalid client secret"], []),
        "unknown client id": (jit("jit_request", dict(OPEN, client_id="00000000-dead-beef-0000-000000000000")), ["AADSTS700016"], []),
        "unknown tenant": (
            jit("nsg_jit_facts", {"tenant": BAD_TENANT}),
            [BAD_TENANT, "Authentication failed"],
            [],
        ),
        "wrong CA": (
            jit("jit_request", OPEN, environment={"REQUESTS_CA_BUNDLE": other_ca, "SSL_CERT_FILE": other_ca}),
            ["TLS verification failed", "REQUESTS_CA_BUNDLE"],
            [],
        ),
        "missing SDK": (jit("jit_policy", POLICY, vars={"ansible_python_interpreter": "/usr/bin/python3"}), ["azure", "Failed to import"], []),
        "expired token": (
            jit("nsg_jit_facts", {}),
            ["HTTP 401", "ExpiredAuthenticationToken", "request id"],
            [{"method": "GET", "path_contains": "virtualMachines", "kind": "latency", "latency_ms": 3500, "times": 1}],
        ),
        "reader writes": (jit("jit_policy", dict(POLICY, client_id=READER_ID, secret=READER_SECRET)), ["HTTP 403", "AuthorizationFailed", "request id"], []),
    }


@pytest.fixture(scope="module")
def auth_run(armsim_server, tmp_path_factory):
    sim = armsim_server
    sim.reset()
    seed = sim.state()
    tmp = tmp_path_factory.mktemp("auth")
    other_ca = str(tmp / "other-ca.pem")
    trustme.CA().cert_pem.write_to_path(other_ca)
    table = cases(sim, other_ca)
    tasks = [admin_task(sim, [("POST", "/stats/reset", {})], "start")]
    for cid, (task, _needles, faults) in table.items():
        if faults:
            tasks.append(admin_task(sim, [("POST", "/faults", fault) for fault in faults], "%s faults" % cid))
        tasks += [dict(task, name=cid), admin_task(sim, [("GET", "/stats"), ("POST", "/stats/reset", {}), ("DELETE", "/faults")], "%s counters" % cid)]
    tasks.append(
        {
            "name": "open with the secret as an option",
            "jitaccess.azure.jit_request": dict(OPEN, secret="{{ lookup('ansible.builtin.env', 'AZURE_SECRET') }}"),
        }
    )
    run = run_playbook(sim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], env=GUARD_ENV, args=("-vvvv",))
    return run, table, seed, sim.state()


def test_bad_credentials_tls_sdk_and_rights(auth_run, ledger):
    run, table, seed, final = auth_run
    problems, writes = [], 0
    for cid, (_task, needles, _faults) in table.items():
        stats = run.result("%s counters" % cid)["responses"][0]
        try:
            assert_clean_failure(run.result(cid), *needles)
            expected = 1 if cid == "reader writes" else 0  # the refused PUT reached armsim
            assert stats["writes"] == expected, "%d writes" % stats["writes"]
            if cid == "reader writes":
                assert stats["by_status"].get("403") == 1
        except AssertionError as exc:
            problems.append("%s: %s" % (cid, str(exc)[:600]))
        writes += stats["writes"] if cid != "reader writes" else 0
    ledger.add(cases=len(table), bad_inputs=len(table), rejected_writes=writes)
    assert not problems, "\n".join(problems)
    assert policies(final) == policies(seed)


def test_no_secret_in_any_output_at_vvvv(auth_run, ledger):
    run, _table, _seed, final = auth_run
    opened = run.result("open with the secret as an option")
    assert not opened.get("failed"), opened.get("msg")
    assert opened["invocation"]["module_args"]["secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    # jit_guard closed the access at the end of the run, and said so
    assert "jit_guard: the run ended; closing 1 JIT access this run opened" in run.stdout
    assert "jit_guard: all JIT access opened by this run is closed" in run.stdout
    assert jit_rules(final) == []
    assert len(run.stdout) > 20000  # really verbose
    for secret in (SECRET, WRONG_SECRET, READER_SECRET):
        assert_no_secret(secret, run.stdout, run.stderr)
    ledger.add(cases=1)
