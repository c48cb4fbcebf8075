"""jit_guard record file: what jit_request records before waiting, how the callback reads it, merges
it with task results and explicit closes, and waits for rules initiated but not applied yet."""

import json
import os
import stat
from types import SimpleNamespace

import pytest

from ansible_collections.jitaccess.azure.plugins.callback import jit_guard
from ansible_collections.jitaccess.azure.plugins.modules import jit_request

SUB = "00000000-0000-0000-0000-000000000001"
VM1 = "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-1" % SUB
VM2 = "/subscriptions/%s/resourceGroups/rg-db/providers/Microsoft.Compute/virtualMachines/db-1" % SUB
NSG_SUBNET = "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Network/networkSecurityGroups/nsg-app" % SUB
NSG_NIC = "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Network/networkSecurityGroups/app-1-nic-nsg" % SUB


class Display:
    verbosity = 0

    def __init__(self):
        self.lines = []

    def display(self, message, color=None):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append("WARNING " + message)


def item(vm_id, port=22, source="127.0.0.1", rules=()):
    return {
        "vm_id": vm_id,
        "vm_name": vm_id.rsplit("/", 1)[1],
        "port": port,
        "source": source,
        "policy_id": "p",
        "end_time_utc": None,
        "private_ips": ["10.1.0.4"],
        "nsg_ids": [NSG_SUBNET],
        "nsg_rules": list(rules),
    }


def result(data, args=None):
    task = SimpleNamespace(action="jitaccess.azure.jit_request", resolved_action=None, args=args or {}, check_mode=False)
    return SimpleNamespace(_task=task, _result=data)


@pytest.fixture
def guard(monkeypatch, tmp_path):
    monkeypatch.setattr(jit_guard.atexit, "register", lambda function: None)
    monkeypatch.setattr(jit_guard.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "guard"))
    os.mkdir(str(tmp_path / "guard"), 0o700)
    monkeypatch.delenv(jit_guard.RECORD_VARIABLE, raising=False)
    plugin = jit_guard.CallbackModule(display=Display())
    monkeypatch.setattr(plugin, "_install_signal_handlers", lambda: None)
    plugin._start_record()
    plugin.closed = []

    def fake_close(accesses, reason):
        plugin.closed.append((reason, sorted((a["vm_id"], a["port"], a["pending"]) for a in accesses)))

    monkeypatch.setattr(plugin, "_close", fake_close)
    yield plugin
    os.environ.pop(jit_guard.RECORD_VARIABLE, None)


def module_records(items, auth=None):
    """What jit_request appends: the real writer, to the path the callback exported."""
    assert jit_request.write_guard_record(os.environ[jit_request.GUARD_RECORD_VARIABLE], items, auth or {}) is None


def test_the_callback_exports_a_private_record_file(guard):
    path = os.environ[jit_guard.RECORD_VARIABLE]
    assert path == guard._record_path and os.path.isfile(path)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert jit_request.GUARD_RECORD_VARIABLE == jit_guard.RECORD_VARIABLE
    assert jit_request.NON_SECRET_AUTH_KEYS is jit_guard.AUTH_KEYS  # one definition (_auth)
    assert not {"secret", "password"} & set(jit_guard.AUTH_KEYS)
    guard._remove_record()
    assert not os.path.exists(os.path.dirname(path)) and jit_guard.RECORD_VARIABLE not in os.environ


def test_record_lines_carry_the_opened_items_and_no_secret():
    text = jit_request.guard_record_lines([item(VM1)], {"tenant": "t"}, now=5.0)
    (line,) = text.splitlines()
    entry = json.loads(line)
    assert entry["vm_id"] == VM1 and entry["port"] == 22 and entry["nsg_ids"] == [NSG_SUBNET] and entry["private_ips"] == ["10.1.0.4"]
    assert entry["auth"] == {"tenant": "t"} and entry["recorded_at"] == 5.0
    assert text.endswith("\n")


def test_write_failure_is_reported_not_raised(tmp_path):
    error = jit_request.write_guard_record(str(tmp_path / "missing-dir" / "opened.jsonl"), [item(VM1)], {})
    assert error and "No such file" in error


def test_parse_record_keeps_a_torn_line_for_later_and_skips_junk():
    good = json.dumps(item(VM1)).encode()
    entries, consumed = jit_guard.parse_record(good + b"\nnot json\n[1]\n" + good[:10])
    assert [entry["vm_id"] for entry in entries] == [VM1]
    assert consumed == len(good) + len(b"\nnot json\n[1]\n")
    assert jit_guard.parse_record(b"") == ([], 0)


def test_merge_record_adds_pending_accesses_and_lets_results_win():
    accesses = {}
    entry = dict(item(VM1), auth={"tenant": "t", "secret": "x", "client_id": jit_guard.MASKED})
    added = jit_guard.merge_record(accesses, [entry, dict(entry), dict(item(VM2, 3389), auth={})])
    assert added == [(VM1.lower(), 22, ("127.0.0.1",)), (VM2.lower(), 3389, ("127.0.0.1",))]
    first = accesses[(VM1.lower(), 22, ("127.0.0.1",))]
    assert first["pending"] and first["origin"] == jit_guard.ORIGIN_RECORD and first["auth"] == {"tenant": "t"}  # never a secret
    # a VM port already known (from a result) is not duplicated, even with another source; it becomes pending
    known = {(VM1.lower(), 22, None): {"vm_id": VM1, "port": 22, "sources": None, "auth": {}, "pending": False, "origin": "result"}}
    assert jit_guard.merge_record(known, [item(VM1)]) == []
    assert list(known) == [(VM1.lower(), 22, None)] and known[(VM1.lower(), 22, None)]["pending"]


def test_interrupted_wait_closes_what_was_recorded(guard):
    module_records([item(VM1), item(VM2)])
    guard.v2_playbook_on_stats(None)  # the task never returned
    assert guard.closed == [("the run ended", [(VM1, 22, True), (VM2, 22, True)])]


def test_result_supersedes_the_record_and_an_explicit_close_forgets_both(guard):
    module_records([item(VM1, source=None), item(VM2)])
    rule = {"id": NSG_SUBNET + "/securityRules/r", "nsg_id": NSG_SUBNET, "name": "r"}
    guard.v2_runner_on_ok(result({"changed": True, "opened": [item(VM1, source="127.0.0.1", rules=[rule]), item(VM2, rules=[rule])]}))
    assert sorted((a["vm_id"], a["sources"], a["pending"], a["origin"]) for a in guard._open.values()) == [
        (VM1, ("127.0.0.1",), False, "result"),
        (VM2, ("127.0.0.1",), False, "result"),
    ]
    assert guard._recorded == 2  # one VM port each, however it was learnt
    guard.v2_runner_on_ok(result({"changed": True, "closed": []}, args={"state": "absent", "virtual_machines": [{"id": VM2}]}))
    assert [a["vm_id"] for a in guard._open.values()] == [VM1]
    # a later initiate of the closed VM port (recorded, task interrupted) is ours again
    module_records([item(VM2)])
    guard.v2_playbook_on_stats(None)
    assert guard.closed == [("the run ended", [(VM1, 22, False), (VM2, 22, True)])]


def test_close_recorded_after_a_task_that_closed_it_is_kept_out(guard):
    module_records([item(VM1)])
    guard.v2_runner_on_ok(result({"changed": True, "closed": [{"vm_id": VM1, "port": 22}]}, args={"state": "absent"}))
    guard.v2_playbook_on_stats(None)
    assert guard.closed == [] and guard._open == {}


def test_rule_sites_and_missing_sites():
    record = {"nsg_ids": [NSG_SUBNET, NSG_NIC]}
    access = {"vm_id": VM1, "port": 22}
    rules = [
        {"vm_id": VM1, "nsg_id": NSG_SUBNET, "port_numbers": [22]},
        {"vm_id": VM1, "nsg_id": NSG_NIC, "port_numbers": [3389]},  # another port
        {"vm_id": VM2, "nsg_id": NSG_NIC, "port_numbers": [22]},  # another VM
    ]
    seen = jit_guard.rule_sites(record, access, rules)
    assert seen == {NSG_SUBNET.lower()}
    assert jit_guard.missing_sites(record, access, seen) == {NSG_NIC.lower()}
    kept = [{"vm_id": VM1, "nsg_id": NSG_NIC, "rule_name": "wide", "reason": "it also admits ..."}]  # applied, not ours to delete
    assert jit_guard.missing_sites(record, access, seen | jit_guard.rule_sites(record, access, kept)) == set()


def test_close_pending_deletes_rules_as_they_appear_and_gives_up_at_the_deadline(monkeypatch):
    monkeypatch.setattr(jit_guard.atexit, "register", lambda function: None)
    monkeypatch.setattr(jit_guard.time, "sleep", lambda seconds: None)
    plugin = jit_guard.CallbackModule(display=Display())
    topology = {VM1.lower(): {"id": VM1, "nsg_ids": [NSG_SUBNET, NSG_NIC]}, VM2.lower(): {"id": VM2, "nsg_ids": [NSG_NIC]}}
    reads = []

    def read(method, url, api_version):
        name = url.rsplit("/", 1)[1]
        reads.append(name)
        return {"id": name, "round": len(reads)}

    api = SimpleNamespace(request=read)

    def fake_plan(topology_, nsgs, targets):
        # the NIC NSG rule of app-1 appears from the third read of that NSG on; db-1's never does
        nic = nsgs.get(NSG_NIC.lower())
        if nic and nic["round"] == 3 and any(target["vm_id"] == VM1 for target in targets):
            return [{"vm_id": VM1, "nsg_id": NSG_NIC, "rule_name": "MicrosoftDefenderForCloud-JITRule-9", "port_numbers": [22]}], [], []
        return [], [], []

    deleted = []
    monkeypatch.setattr(jit_guard, "plan_close", fake_plan)
    monkeypatch.setattr(jit_guard, "delete_rules", lambda api_, call, rules: deleted.extend(rules) or list(rules))
    clock = iter(range(0, 1000))
    monkeypatch.setattr(jit_guard.time, "monotonic", lambda: next(clock))
    found = [{"vm_id": VM1, "nsg_id": NSG_SUBNET, "port_numbers": [22]}]  # the first pass deleted the subnet NSG rule
    accesses = [{"vm_id": VM1, "port": 22, "sources": ("127.0.0.1",)}, {"vm_id": VM2, "port": 22, "sources": None}]

    def call(action, function):
        return function()

    planned, done, late = plugin._close_pending(api, call, (topology, {}), accesses, found=found, deadline=20)
    assert [rule["rule_name"] for rule in done] == ["MicrosoftDefenderForCloud-JITRule-9"] == [rule["rule_name"] for rule in deleted]
    assert planned == done
    assert late == [accesses[1]]  # db-1: nothing appeared before the deadline
    assert reads and set(reads) == {"app-1-nic-nsg"}  # only the NSG still missing a rule is read
    assert "waiting up to" in plugin._display.lines[0]
    # nothing pending: no wait, no read
    reads.clear()
    assert plugin._close_pending(api, call, (topology, {}), accesses[:1], found=found + [dict(found[0], nsg_id=NSG_NIC)], deadline=20) == ([], [], [])
    assert reads == []
