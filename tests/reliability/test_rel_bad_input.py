"""Hostile and bad input: out-of-range ports and durations, malformed and IPv6 prefixes, "anywhere"
sources without the opt-in, injection-looking names, unknown/duplicate VMs, VMs in no policy or
without NSG, mixed subscriptions — across jit_policy, jit_request, nsg_jit_facts and both roles.

Every case is one task of ONE ansible-playbook run (errors ignored), followed by an admin task
that reads and zeroes armsim's counters. Each case must fail with a message that names the
offending value, without a traceback, and with zero ARM writes; the client secret never appears.
"""

import os
import sys

import pytest
from harness import run_playbook
from reltools import ADMIN_ENV, admin_task, assert_clean_failure, assert_no_secret, policies, vm
from roles_support import write_inventory

ARMSIM_SEED = "reliability.yaml"
SECRET = "rel-Sup3r-S3cret~value.0001"  # the seed principal's
OTHER_SUB = "99999999-9999-9999-9999-999999999999"
LONG = "a" * 300
APP4_OTHER_SUB = "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-4" % OTHER_SUB
APP4_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-4"


def policy(*vms, **args):
    return ("jit_policy", dict({"virtual_machines": list(vms) or [vm("app-4", "rg-app")]}, **args))


def request(*vms, **args):
    return ("jit_request", dict({"virtual_machines": list(vms) or [vm("app-1", "rg-app")], "ports": [22]}, **args))


def facts(**args):
    return ("nsg_jit_facts", args)


def port(number, **extra):
    return dict({"number": number}, **extra)


# case id -> ((module, args), substrings the msg must contain, case-insensitively)
CASES = {
    # jit_policy
    "policy port 70000": (policy(ports=[port(70000)]), ["70000", "65535"]),
    "policy duration PT25H": (policy(ports=[port(22, max_request_access_duration="PT25H")]), ["PT25H"]),
    "policy duration 1m": (policy(ports=[port(22, max_request_access_duration="1m")]), ["1m"]),
    "policy duration banana": (policy(ports=[port(22, max_request_access_duration="banana")]), ["banana"]),
    "policy prefix /33": (policy(ports=[port(22, allowed_source_address_prefixes=["10.0.0.0/33"])]), ["10.0.0.0/33"]),
    "policy prefix IPv6": (policy(ports=[port(22, allowed_source_address_prefixes=["2001:db8::/32"])]), ["2001:db8::/32"]),
    "policy protocol ICMP": (policy(ports=[port(22, protocol="ICMP")]), ["ICMP"]),
    "policy duplicate port": (policy(ports=[port(22), port(22)]), ["22"]),
    "policy empty ports": (policy(ports=[]), ["ports"]),
    "policy name ../": (policy(vm("../../etc/passwd", "rg-app")), ["../../etc/passwd"]),
    "policy name quotes": (policy(vm('app-4"; DROP TABLE vms; --', "rg-app")), ['app-4"; DROP TABLE vms; --']),
    "policy name newline": (policy(vm("app-4\nrg-db", "rg-app")), ["app-4"]),
    "policy name 300 chars": (policy(vm(LONG, "rg-app")), [LONG]),
    "policy unknown VM": (policy(vm("ghost-1", "rg-app")), ["ghost-1"]),
    "policy duplicate VM": (policy(vm("app-4", "rg-app"), {"id": APP4_ID}), ["app-4", "more than once"]),
    "policy other subscription": (policy({"id": APP4_OTHER_SUB}), [OTHER_SUB]),
    "policy malformed id": (policy({"id": "/subscriptions/x/../../providers"}), ["/subscriptions/x/../../providers"]),
    "policy name with slash": (policy(policy_name="../default"), ["../default"]),
    "policy VM without NSG": (policy(vm("bare-1", "rg-bare")), ["bare-1"]),
    # jit_request
    "request port 70000": (request(ports=[70000]), ["70000"]),
    "request port not in policy": (request(ports=[3389]), ["3389"]),
    "request duration PT25H": (request(duration="PT25H"), ["PT25H"]),
    "request duration over policy max": (request(duration="PT4H"), ["PT4H"]),
    "request duration 30s": (request(duration="30s"), ["30s"]),
    "request source *": (request(source_address_prefixes=["*"]), ["*", "allow_any_source"]),
    "request source 0.0.0.0/0": (request(source_address_prefixes=["0.0.0.0/0"]), ["0.0.0.0/0", "allow_any_source"]),
    "request source Internet": (request(source_address_prefixes=["Internet"]), ["Internet", "allow_any_source"]),
    "request source IPv6": (request(source_address_prefixes=["2001:db8::1"]), ["2001:db8::1"]),
    "request source malformed": (request(source_address_prefixes=["10.0.0.300"]), ["10.0.0.300"]),
    "request two sources": (request(source_address_prefixes=["198.51.100.1", "198.51.100.2"]), ["198.51.100.1", "one"]),
    "request source outside policy": (request(vm("app-3", "rg-app"), ports=[2222], source_address_prefixes=["203.0.113.9"]), ["203.0.113.9", "10.0.0.0/8"]),
    "request VM in no policy": (request(vm("app-4", "rg-app")), ["app-4", "jit_policy"]),
    "request VM without NSG": (request(vm("bare-1", "rg-bare")), ["bare-1"]),
    "request unknown VM": (request(vm("ghost-1", "rg-app")), ["ghost-1"]),
    "request other subscription": (request({"id": APP4_OTHER_SUB}), [OTHER_SUB]),
    "request name injection": (request(vm("app-1' or '1'='1", "rg-app")), ["app-1' or '1'='1"]),
    "request name 300 chars": (request(vm(LONG, "rg-app")), [LONG]),
    "request negative wait_timeout": (request(wait_timeout=-5), ["-5"]),
    "request renew_margin too long": (request(duration="30m", renew_margin="45m"), ["45m"]),
    "close unknown VM": (request(vm("ghost-1", "rg-app"), state="absent"), ["ghost-1"]),
    # nsg_jit_facts
    "facts malformed id": (facts(virtual_machines=[{"id": "/subscriptions/../x"}]), ["/subscriptions/../x"]),
    "facts tags not strings": (facts(tags={"env": ["a", "b"]}), ["env"]),
}

# Roles: (role, tasks_from, vars, hosts group) -> needles in the failed task's msg
ROLE_CASES = {
    "fleet mode destroy": ("jit_fleet", None, {"jit_fleet_mode": "destroy"}, ["destroy"]),
    "fleet duration PT48H": ("jit_fleet", None, {"jit_fleet_mode": "enforce", "jit_fleet_max_request_access_duration": "PT48H"}, ["PT48H"]),
    "fleet IPv6 source": ("jit_fleet", None, {"jit_fleet_mode": "enforce", "jit_fleet_allowed_source_address_prefixes": ["::/0"]}, ["::/0"]),
    "fleet port 70000": ("jit_fleet", None, {"jit_fleet_mode": "enforce", "jit_fleet_ports": {"linux": [70000], "windows": [3389]}}, ["70000"]),
    "access source *": ("jit_access", "open", {"jit_access_source_address_prefixes": ["*"]}, ["*", "allow_any_source"]),
    "access duration PT48H": ("jit_access", "open", {"jit_access_duration": "PT48H"}, ["PT48H"]),
    "access bad VM id": ("jit_access", "open", {"jit_access_vm_id_var": "bad_id"}, ["../../etc/passwd"]),
}


def case_task(cid, module, args):
    return {"name": cid, "jitaccess.azure." + module: args, "ignore_errors": True}


def counters(sim, cid):
    return admin_task(sim, [("GET", "/stats"), ("POST", "/stats/reset", {})], "%s counters" % cid)


def role_block(sim, cid, role, tasks_from, role_vars):
    include = {"name": cid + " role", "ansible.builtin.include_role": {"name": "jitaccess.azure." + role}, "vars": role_vars}
    if tasks_from:
        include["ansible.builtin.include_role"]["tasks_from"] = tasks_from
    return [
        {
            "block": [include, {"name": cid + " passed", "ansible.builtin.debug": {"msg": "no failure"}}],
            "rescue": [{"name": cid, "ansible.builtin.debug": {"var": "ansible_failed_result"}}],
        },
        counters(sim, cid),
    ]


@pytest.fixture(scope="module")
def table(armsim_server, tmp_path_factory):
    sim = armsim_server
    sim.reset()
    seed = sim.state()
    tmp = tmp_path_factory.mktemp("bad-input")
    tasks = [admin_task(sim, [("POST", "/stats/reset", {})], "start")]
    for cid, ((module, args), _needles) in CASES.items():
        tasks += [case_task(cid, module, args), counters(sim, cid)]
    fleet, access = [], []
    for cid, (role, tasks_from, role_vars, _needles) in ROLE_CASES.items():
        (fleet if role == "jit_fleet" else access).extend(role_block(sim, cid, role, tasks_from, role_vars))
    plays = [
        {"name": "modules", "hosts": "localhost", "gather_facts": False, "tasks": tasks + fleet, "vars": {"jit_fleet_report_dir": str(tmp)}},
        {"name": "access", "hosts": "targets", "gather_facts": False, "tasks": access, "vars": {"jit_access_ports": [22], "jit_access_wait_for_port": False}},
    ]
    hosts = [("app-1", "rg-app", {"bad_id": "../../etc/passwd", "ansible_host": "localhost"}), ("db-1", "rg-db", {"bad_id": "'../../etc/passwd'"})]
    inventory = write_inventory(sim, str(tmp / "inventory.ini"), hosts)
    with open(inventory, encoding="utf-8") as stream:
        inventory_text = stream.read()
    with open(inventory, "w", encoding="utf-8") as stream:
        stream.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable + inventory_text)
    run = run_playbook(sim, plays, env=ADMIN_ENV, inventory=inventory)
    return run, seed, sim.state()


def _role_failure(run, cid):
    found = [entry["result"]["ansible_failed_result"] for entry in run.results if entry["task"] == cid]
    found = [item for item in found if isinstance(item, dict)]
    assert found, "role case %r did not fail" % cid
    return found[0]


def test_bad_input_table(table, ledger):
    run, seed, final = table
    assert_no_secret(SECRET, run.stdout, run.stderr)
    problems = []
    writes = 0
    for cid, (_task, needles) in CASES.items():
        result = run.result(cid)
        stats = run.result("%s counters" % cid)["responses"][0]
        writes += stats["writes"]
        try:
            assert_clean_failure(result, *needles)
            assert stats["writes"] == 0, "%d writes" % stats["writes"]
        except AssertionError as exc:
            problems.append("%s: %s" % (cid, str(exc)[:600]))
    for cid, (_role, _from, _vars, needles) in ROLE_CASES.items():
        stats = run.result("%s counters" % cid)["responses"][0]
        writes += stats["writes"]
        try:
            failure = _role_failure(run, cid)
            assert_clean_failure(failure, *needles)
            assert stats["writes"] == 0, "%d writes" % stats["writes"]
        except AssertionError as exc:
            problems.append("%s: %s" % (cid, str(exc)[:600]))
    if os.environ.get("JIT_RELIABILITY_SHOW"):
        for cid in list(CASES) + list(ROLE_CASES):
            result = run.result(cid) if cid in CASES else _role_failure(run, cid)
            print("%-36s %s" % (cid, str(result.get("msg"))[:300].replace("\n", " | ")))
    total = len(CASES) + len(ROLE_CASES)
    ledger.add(cases=total, bad_inputs=total, rejected_writes=writes)
    assert not problems, "\n".join(problems)
    assert total >= 40
    assert policies(final) == policies(seed)
    assert writes == 0
