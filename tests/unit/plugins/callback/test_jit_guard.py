"""jit_guard callback: what it records from jit_request results and from the record file jit_request
appends to before waiting, what it forgets after an explicit close, and how it closes (with the SDK
calls replaced by a recorder), including rules initiated but not applied yet."""

import os
import signal
import stat
from types import SimpleNamespace

import pytest
from fakes import APP_NIC_NSG, APP_NSG, APP_VM, DB_VM, SUB, opened

from ansible_collections.jitaccess.azure.plugins.callback import jit_guard
from ansible_collections.jitaccess.azure.plugins.module_utils import _guard_record
from ansible_collections.jitaccess.azure.plugins.modules import jit_request

JIT_REQUEST = "jitaccess.azure.jit_request"


class Display:
    verbosity = 0

    def __init__(self):
        self.lines = []

    def display(self, message, color=None):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append("WARNING " + message)


def result(data, args=None, action=JIT_REQUEST, check_mode=False):
    task = SimpleNamespace(action=action, resolved_action=None, args=args or {}, check_mode=check_mode)
    return SimpleNamespace(_task=task, _result=data)


def new_guard(monkeypatch):
    """The callback as Ansible creates it (no atexit hook left behind)."""
    monkeypatch.setattr(jit_guard.atexit, "register", lambda function: None)
    return jit_guard.CallbackModule(display=Display())


def record_closes(plugin, monkeypatch, *fields):
    """Replace ``_close``: ``plugin.closed`` gets ``(reason, sorted (field values) of each access)``."""
    plugin.closed = []

    def fake_close(accesses, reason):
        plugin.closed.append((reason, sorted(tuple(access[name] for name in fields) for access in accesses)))

    monkeypatch.setattr(plugin, "_close", fake_close)


@pytest.fixture
def guard(monkeypatch):
    """The callback without a record file; ``closed`` lists (vm_id, port) closed."""
    plugin = new_guard(monkeypatch)
    record_closes(plugin, monkeypatch, "vm_id", "port")
    return plugin


@pytest.fixture
def recording_guard(monkeypatch, tmp_path):
    """The callback with its record file started; ``closed`` lists (vm_id, port, pending) closed."""
    monkeypatch.setattr(jit_guard.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "guard"))
    os.mkdir(str(tmp_path / "guard"), 0o700)
    monkeypatch.delenv(_guard_record.RECORD_VARIABLE, raising=False)
    plugin = new_guard(monkeypatch)
    monkeypatch.setattr(plugin, "_install_signal_handlers", lambda: None)
    plugin._start_record()
    record_closes(plugin, monkeypatch, "vm_id", "port", "pending")
    yield plugin
    os.environ.pop(_guard_record.RECORD_VARIABLE, None)


# --------------------------------------------------------------------------------------------------
# Task results


def test_records_only_what_jit_request_opened_in_a_real_run(guard):
    guard.v2_runner_on_ok(result({"changed": True, "opened": [opened(APP_VM)]}))
    guard.v2_runner_on_ok(result({"changed": False, "opened": [opened(DB_VM)]}))  # was open already
    guard.v2_runner_on_ok(result({"changed": True, "opened": [opened(DB_VM)]}, check_mode=True))
    guard.v2_runner_on_ok(result({"changed": True, "opened": [opened(DB_VM)]}, action="ansible.builtin.debug"))
    guard.v2_runner_on_failed(result({"failed": True, "opened": [opened(DB_VM, 3389)]}, action="jit_request"))  # wait timed out after initiating
    assert sorted((a["vm_id"], a["port"]) for a in guard._open.values()) == [(APP_VM, 22), (DB_VM, 3389)]


def test_loop_results_and_auth_settings_from_the_invocation(guard):
    data = {
        "changed": True,
        "results": [
            {"changed": True, "opened": [opened(APP_VM)], "invocation": {"module_args": {"tenant": "t", "secret": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}},
            {"changed": False, "opened": []},
        ],
    }
    guard.v2_runner_on_ok(result(data))
    (access,) = guard._open.values()
    assert access["auth"] == {"tenant": "t"}  # the masked secret is never kept


def close_result(vm, *ports, changed=True):
    """jit_request state=absent's result: ``ports`` are ``(number, action, [(nsg id, sources)...])``."""
    entries = []
    for number, action, deleted in ports:
        access = [{"nsg_id": nsg, "name": "r", "source_address_prefixes": list(sources)} for nsg, sources in deleted]
        entries.append({"number": number, "action": action, "access": access})
    return {"changed": changed, "virtual_machines": [{"id": vm, "ports": entries}], "closed": []}


def test_only_what_a_close_really_deleted_leaves_the_ledger(guard):
    two_nsgs = dict(opened(APP_VM), nsg_ids=[APP_NSG, APP_NIC_NSG])
    guard.v2_runner_on_ok(result({"changed": True, "opened": [two_nsgs, opened(APP_VM, 80), opened(DB_VM)]}))
    # a close of app-1 port 22 that found its rule on one NSG only: the other may still get one
    guard.v2_runner_on_ok(result(close_result(APP_VM, (22, "closed", [(APP_NSG, ["127.0.0.1"])])), args={"state": "absent"}))
    left = {(a["vm_id"], a["port"]): a for a in guard._open.values()}
    assert sorted(left) == [(APP_VM, 22), (APP_VM, 80), (DB_VM, 22)]
    assert left[(APP_VM, 22)]["sites"] == {APP_NIC_NSG.lower()} and left[(APP_VM, 22)]["pending"] is True
    # per-VM port overrides: closing port 80 says nothing about port 22
    guard.v2_runner_on_ok(result(close_result(APP_VM, (80, "closed", [(APP_NSG, ["127.0.0.1"])])), args={"state": "absent"}))
    assert sorted((a["vm_id"], a["port"]) for a in guard._open.values()) == [(APP_VM, 22), (DB_VM, 22)]
    # rules of another source deleted, a pending port, a failed close: nothing leaves
    guard.v2_runner_on_ok(result(close_result(DB_VM, (22, "closed", [(APP_NSG, ["10.9.9.9"])])), args={"state": "absent"}))
    guard.v2_runner_on_ok(result(close_result(DB_VM, (22, "pending", []), changed=False), args={"state": "absent"}))
    guard.v2_runner_on_failed(result({"failed": True, "virtual_machines": []}, args={"state": "absent"}))
    assert sorted((a["vm_id"], a["port"]) for a in guard._open.values()) == [(APP_VM, 22), (DB_VM, 22)]
    # not open for a close narrowed to another source: still ours; not open for any source: gone
    narrowed = {"state": "absent", "source_address_prefixes": ["10.9.9.9"]}
    guard.v2_runner_on_ok(result(close_result(DB_VM, (22, "not_open", []), changed=False), args=narrowed))
    assert len(guard._open) == 2
    guard.v2_runner_on_ok(result(close_result(DB_VM, (22, "not_open", []), changed=False), args={"state": "absent"}))
    guard.v2_runner_on_ok(result(close_result(APP_VM, (22, "closed", [(APP_NIC_NSG, ["127.0.0.1/32"])])), args={"state": "absent"}))
    assert guard._open == {}


def test_stats_closes_what_is_left_and_reports_a_clean_run(guard):
    guard.v2_playbook_on_stats(None)
    assert guard.closed == [] and guard._display.lines == []
    guard.v2_runner_on_ok(result({"changed": True, "opened": [opened(APP_VM)]}))
    guard.v2_playbook_on_stats(None)
    assert guard.closed == [("the run ended", [(APP_VM, 22)])]


def test_signal_handler_closes_then_hands_over(guard, monkeypatch):
    calls = []
    guard._previous_handlers[signal.SIGTERM] = lambda signum, frame: calls.append(("previous", signum))
    guard.v2_runner_on_ok(result({"changed": True, "opened": [opened(DB_VM)]}))
    monkeypatch.setattr(guard, "_close_all", lambda reason: calls.append(("close", reason)))
    guard._on_signal(signal.SIGTERM, None)
    assert calls == [("close", "SIGTERM received"), ("previous", signal.SIGTERM)]
    # in a forked worker the handler only hands over
    calls.clear()
    monkeypatch.setattr(jit_guard.os, "getpid", lambda: -1)
    guard._on_signal(signal.SIGTERM, None)
    assert calls == [("previous", signal.SIGTERM)]


def test_close_group_deletes_through_the_shared_close_logic(monkeypatch):
    plugin = new_guard(monkeypatch)
    monkeypatch.setattr(plugin, "get_option", {"auth_source": "env", "client_id": "c", "secret": "s3cret", "tenant": "t"}.get)
    connected = []

    def connect(settings, subscription_id):
        connected.append(settings)
        return SimpleNamespace(subscription_id=subscription_id, server_date=None)

    monkeypatch.setattr(jit_guard._api, "connect", connect)
    seen = {}

    rule = {"vm_name": "app-1", "ports": ["22"], "sources": ["127.0.0.1"], "rule_name": "MicrosoftDefenderForCloud-JITRule-1-x", "nsg_name": "nsg-app"}

    def fake_plan(topology, nsgs, targets):
        seen["targets"] = targets
        return [rule], [], []

    def fake_delete(api, call, rules):
        seen["subscription"] = api.subscription_id
        return list(rules)

    monkeypatch.setattr(jit_guard, "read_close_state", lambda api, call: ({}, {}))
    monkeypatch.setattr(jit_guard, "plan_close", fake_plan)
    monkeypatch.setattr(jit_guard, "delete_rules", fake_delete)
    plugin.v2_runner_on_ok(result({"changed": True, "opened": [opened(APP_VM), opened(APP_VM, 80)]}))
    plugin.v2_playbook_on_stats(None)
    assert seen["subscription"] == SUB
    assert [settings["client_id"] for settings in connected] == ["c"]
    assert seen["targets"] == [{"vm_id": APP_VM, "ports": [22, 80], "sources": ["127.0.0.1"]}]
    text = "\n".join(plugin._display.lines)
    assert "closing 2 JIT accesses" in text and "closed app-1 port 22 from 127.0.0.1" in text
    assert "s3cret" not in text
    assert plugin._open == {}


# --------------------------------------------------------------------------------------------------
# The record file


def module_records(items, auth=None):
    """What jit_request appends: the real writer, to the path the callback exported."""
    assert _guard_record.write_guard_record(os.environ[_guard_record.RECORD_VARIABLE], items, auth or {}) is None


def test_the_callback_exports_a_private_record_file(recording_guard):
    path = os.environ[_guard_record.RECORD_VARIABLE]
    assert path == recording_guard._record_path and os.path.isfile(path)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert jit_guard.RECORD_VARIABLE == _guard_record.RECORD_VARIABLE  # the callback exports what jit_request appends to
    assert jit_request.NON_SECRET_AUTH_KEYS is jit_guard.AUTH_KEYS  # one definition (_auth)
    assert not {"secret", "password"} & set(jit_guard.AUTH_KEYS)
    recording_guard._remove_record()
    assert not os.path.exists(os.path.dirname(path)) and _guard_record.RECORD_VARIABLE not in os.environ


def test_merge_record_adds_pending_accesses_and_lets_results_win():
    accesses = {}
    entry = dict(opened(APP_VM), auth={"tenant": "t", "secret": "x", "client_id": _guard_record.MASKED})
    added = jit_guard.merge_record(accesses, [entry, dict(entry), dict(opened(DB_VM, 3389), auth={})])
    assert added == [(APP_VM.lower(), 22, ("127.0.0.1",)), (DB_VM.lower(), 3389, ("127.0.0.1",))]
    first = accesses[(APP_VM.lower(), 22, ("127.0.0.1",))]
    assert first["pending"] and first["origin"] == jit_guard.ORIGIN_RECORD and first["auth"] == {"tenant": "t"}  # never a secret
    # a VM port already known (from a result) is not duplicated, even with another source; it becomes pending
    known = {(APP_VM.lower(), 22, None): {"vm_id": APP_VM, "port": 22, "sources": None, "auth": {}, "pending": False, "origin": "result"}}
    assert jit_guard.merge_record(known, [opened(APP_VM)]) == []
    assert list(known) == [(APP_VM.lower(), 22, None)] and known[(APP_VM.lower(), 22, None)]["pending"]


def test_a_withdrawal_takes_back_only_what_its_own_attempt_recorded():
    """jit_request records the ports it is about to initiate (attempt A); a refused initiate withdraws
    them. The same port recorded earlier by another attempt, or from a result, stays in the ledger."""
    accesses = {}
    earlier = dict(opened(DB_VM), auth={}, attempt="0")
    jit_guard.merge_record(accesses, [earlier, dict(opened(APP_VM), auth={}, attempt="A")])
    assert jit_guard.merge_record(accesses, [dict(opened(DB_VM), auth={}, attempt="A")]) == []  # already known
    jit_guard.merge_record(accesses, _guard_record.withdrawn_items([{"vm_id": APP_VM, "port": 22}, {"vm_id": DB_VM, "port": 22}], "A"))
    assert [key[0] for key in accesses] == [DB_VM.lower()]  # APP_VM withdrawn; DB_VM was recorded by attempt 0
    jit_guard.merge_record(accesses, [{"kind": _guard_record.KIND_WITHDRAWN, "vm_id": DB_VM, "port": 22}])  # no attempt: nothing
    assert [key[0] for key in accesses] == [DB_VM.lower()]
    # withdrawn, then opened again by a later attempt: known again
    assert jit_guard.merge_record(accesses, [dict(opened(APP_VM), auth={}, attempt="B")]) == [(APP_VM.lower(), 22, ("127.0.0.1",))]


def test_a_lease_recorded_before_its_initiate_is_not_judged_until_reported(recording_guard, monkeypatch):
    """A port recorded before its initiate may not be in Azure's policy yet: the renewal check must
    not read that as 'its request ended'. It is judged once the task reports it."""
    monkeypatch.setattr(jit_guard._api, "connect", lambda *args, **kwargs: pytest.fail("nothing to renew yet"))
    lease = dict(opened(APP_VM), auth={}, attempt="A", lease=300, access_until="2099-01-01T00:00:00Z", policy_id=APP_VM.rsplit("/", 4)[0] + "/policy")
    module_records([lease])
    recording_guard._renew_leases()
    (access,) = recording_guard._open.values()
    assert access["lease"] is not None and access["renew"] and access["attempt"] == "A"


def test_interrupted_wait_closes_what_was_recorded(recording_guard):
    module_records([opened(APP_VM), opened(DB_VM)])
    recording_guard.v2_playbook_on_stats(None)  # the task never returned
    assert recording_guard.closed == [("the run ended", [(APP_VM, 22, True), (DB_VM, 22, True)])]


def test_result_supersedes_the_record_and_an_explicit_close_forgets_both(recording_guard):
    module_records([opened(APP_VM, source=None), opened(DB_VM)])
    rule = {"id": APP_NSG + "/securityRules/r", "nsg_id": APP_NSG, "name": "r"}
    recording_guard.v2_runner_on_ok(result({"changed": True, "opened": [opened(APP_VM, source="127.0.0.1", rules=[rule]), opened(DB_VM, rules=[rule])]}))
    assert sorted((a["vm_id"], a["sources"], a["pending"], a["origin"]) for a in recording_guard._open.values()) == [
        (APP_VM, ("127.0.0.1",), False, "result"),
        (DB_VM, ("127.0.0.1",), False, "result"),
    ]
    assert recording_guard._recorded == 2  # one VM port each, however it was learnt
    recording_guard.v2_runner_on_ok(result(close_result(DB_VM, (22, "closed", [(APP_NSG, ["127.0.0.1"])])), args={"state": "absent"}))
    assert [a["vm_id"] for a in recording_guard._open.values()] == [APP_VM]
    # a later initiate of the closed VM port (recorded, task interrupted) is ours again
    module_records([opened(DB_VM)])
    recording_guard.v2_playbook_on_stats(None)
    assert recording_guard.closed == [("the run ended", [(APP_VM, 22, False), (DB_VM, 22, True)])]


def test_close_recorded_after_a_task_that_closed_it_is_kept_out(recording_guard):
    module_records([opened(APP_VM)])
    recording_guard.v2_runner_on_ok(result(close_result(APP_VM, (22, "closed", [(APP_NSG, ["127.0.0.1"])])), args={"state": "absent"}))
    recording_guard.v2_playbook_on_stats(None)
    assert recording_guard.closed == [] and recording_guard._open == {}


def test_rule_sites_and_missing_sites():
    record = {"nsg_ids": [APP_NSG, APP_NIC_NSG]}
    access = {"vm_id": APP_VM, "port": 22}
    rules = [
        {"vm_id": APP_VM, "nsg_id": APP_NSG, "port_numbers": [22]},
        {"vm_id": APP_VM, "nsg_id": APP_NIC_NSG, "port_numbers": [3389]},  # another port
        {"vm_id": DB_VM, "nsg_id": APP_NIC_NSG, "port_numbers": [22]},  # another VM
    ]
    seen = jit_guard.rule_sites(record, access, rules)
    assert seen == {APP_NSG.lower()}
    assert jit_guard.missing_sites(record, access, seen) == {APP_NIC_NSG.lower()}
    kept = [{"vm_id": APP_VM, "nsg_id": APP_NIC_NSG, "rule_name": "wide", "reason": "it also admits ..."}]  # applied, not ours to delete
    assert jit_guard.missing_sites(record, access, seen | jit_guard.rule_sites(record, access, kept)) == set()


def test_close_pending_deletes_rules_as_they_appear_and_gives_up_at_the_deadline(monkeypatch):
    monkeypatch.setattr(jit_guard.time, "sleep", lambda seconds: None)
    plugin = new_guard(monkeypatch)
    topology = {APP_VM.lower(): {"id": APP_VM, "nsg_ids": [APP_NSG, APP_NIC_NSG]}, DB_VM.lower(): {"id": DB_VM, "nsg_ids": [APP_NIC_NSG]}}
    reads = []

    def read(method, url, api_version):
        reads.append(url.rsplit("/", 1)[1])
        return {"id": url, "round": len(reads)}

    api = SimpleNamespace(request=read)

    def fake_plan(topology_, nsgs, targets):
        # the NIC NSG rule of app-1 appears from the third read of that NSG on; db-1's never does
        nic = nsgs.get(APP_NIC_NSG.lower())
        if nic and nic["round"] == 3 and any(target["vm_id"] == APP_VM for target in targets):
            return [{"vm_id": APP_VM, "nsg_id": APP_NIC_NSG, "rule_name": "MicrosoftDefenderForCloud-JITRule-9", "port_numbers": [22]}], [], []
        return [], [], []

    deleted = []
    monkeypatch.setattr(jit_guard, "plan_close", fake_plan)
    monkeypatch.setattr(jit_guard, "delete_rules", lambda api_, call, rules: deleted.extend(rules) or list(rules))
    clock = iter(range(0, 1000))
    monkeypatch.setattr(jit_guard.time, "monotonic", lambda: next(clock))
    found = [{"vm_id": APP_VM, "nsg_id": APP_NSG, "port_numbers": [22]}]  # the first pass deleted the subnet NSG rule
    accesses = [{"vm_id": APP_VM, "port": 22, "sources": ("127.0.0.1",)}, {"vm_id": DB_VM, "port": 22, "sources": None}]

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
    assert plugin._close_pending(api, call, (topology, {}), accesses[:1], found=found + [dict(found[0], nsg_id=APP_NIC_NSG)], deadline=20) == ([], [], [])
    assert reads == []
