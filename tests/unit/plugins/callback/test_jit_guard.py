"""jit_guard callback: what it records from jit_request results, what it forgets after an explicit
close, and how it closes (with the SDK calls replaced by a recorder)."""

import signal
from types import SimpleNamespace

import pytest

from ansible_collections.jitaccess.azure.plugins.callback import jit_guard

SUB = "00000000-0000-0000-0000-000000000001"
VM1 = "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-1" % SUB
VM2 = "/subscriptions/%s/resourceGroups/rg-db/providers/Microsoft.Compute/virtualMachines/db-1" % SUB


class Display:
    verbosity = 0

    def __init__(self):
        self.lines = []

    def display(self, message, color=None):
        self.lines.append(message)

    def warning(self, message):
        self.lines.append("WARNING " + message)


def result(action, data, args=None, check_mode=False):
    task = SimpleNamespace(action=action, resolved_action=None, args=args or {}, check_mode=check_mode)
    return SimpleNamespace(_task=task, _result=data)


def opened(vm_id, port=22, source="127.0.0.1"):
    return {"vm_id": vm_id, "vm_name": vm_id.rsplit("/", 1)[1], "port": port, "source": source, "policy_id": "p", "nsg_ids": [], "private_ips": []}


@pytest.fixture
def guard(monkeypatch):
    monkeypatch.setattr(jit_guard.atexit, "register", lambda function: None)
    plugin = jit_guard.CallbackModule(display=Display())
    plugin.closed = []
    monkeypatch.setattr(plugin, "_close", lambda accesses, reason: plugin.closed.append((reason, sorted((a["vm_id"], a["port"]) for a in accesses))))
    return plugin


def test_accesses_from_opened_shapes():
    per_port = [opened(VM1, 22), opened(VM1, 2222, None)]
    assert jit_guard.accesses_from_opened(per_port) == [(VM1, 22, ("127.0.0.1",)), (VM1, 2222, None)]
    per_vm = [{"id": VM2, "ports": [22, {"number": 3389, "sources": ["10.0.0.1", "10.0.0.0/28"]}], "source": "198.51.100.1"}]
    assert jit_guard.accesses_from_opened(per_vm) == [(VM2, 22, ("198.51.100.1",)), (VM2, 3389, ("10.0.0.0/28", "10.0.0.1"))]
    assert jit_guard.accesses_from_opened([{"no": "vm"}, "junk", None]) == []


def test_records_only_what_jit_request_opened_in_a_real_run(guard):
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "opened": [opened(VM1)]}))
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": False, "opened": [opened(VM2)]}))  # was open already
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "opened": [opened(VM2)]}, check_mode=True))
    guard.v2_runner_on_ok(result("ansible.builtin.debug", {"changed": True, "opened": [opened(VM2)]}))
    guard.v2_runner_on_failed(result("jit_request", {"failed": True, "opened": [opened(VM2, 3389)]}))  # wait timed out after initiating
    assert sorted((a["vm_id"], a["port"]) for a in guard._open.values()) == [(VM1, 22), (VM2, 3389)]


def test_loop_results_and_auth_settings_from_the_invocation(guard):
    data = {
        "changed": True,
        "results": [
            {"changed": True, "opened": [opened(VM1)], "invocation": {"module_args": {"tenant": "t", "secret": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}},
            {"changed": False, "opened": []},
        ],
    }
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", data))
    (access,) = guard._open.values()
    assert access["auth"] == {"tenant": "t"}  # the masked secret is never kept


def test_explicit_close_is_forgotten(guard):
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "opened": [opened(VM1), opened(VM1, 80), opened(VM2)]}))
    # closes app-1 port 22 only (named by name + resource group)
    close_args = {"state": "absent", "virtual_machines": [{"name": "app-1", "resource_group": "rg-app"}], "ports": [22]}
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "closed": []}, args=close_args))
    assert sorted((a["vm_id"], a["port"]) for a in guard._open.values()) == [(VM1, 80), (VM2, 22)]
    # a close for another source leaves it alone; a failed close forgets nothing
    other = {"state": "absent", "virtual_machines": [{"id": VM2}], "source_address_prefixes": ["10.9.9.9"]}
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": False}, args=other))
    guard.v2_runner_on_failed(result("jitaccess.azure.jit_request", {"failed": True}, args={"state": "absent", "virtual_machines": [{"id": VM2}]}))
    assert len(guard._open) == 2
    # the module's own `closed` list counts too
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "closed": [{"vm_id": VM2, "port": 22}]}, args={"state": "absent"}))
    assert [(a["vm_id"], a["port"]) for a in guard._open.values()] == [(VM1, 80)]


def test_stats_closes_what_is_left_and_reports_a_clean_run(guard):
    guard.v2_playbook_on_stats(None)
    assert guard.closed == [] and guard._display.lines == []
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "opened": [opened(VM1)]}))
    guard.v2_playbook_on_stats(None)
    assert guard.closed == [("the run ended", [(VM1, 22)])]


def test_signal_handler_closes_then_hands_over(guard, monkeypatch):
    calls = []
    guard._previous_handlers[signal.SIGTERM] = lambda signum, frame: calls.append(("previous", signum))
    guard.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "opened": [opened(VM2)]}))
    monkeypatch.setattr(guard, "_close_all", lambda reason: calls.append(("close", reason)))
    guard._on_signal(signal.SIGTERM, None)
    assert calls == [("close", "SIGTERM received"), ("previous", signal.SIGTERM)]
    # in a forked worker the handler only hands over
    calls.clear()
    monkeypatch.setattr(jit_guard.os, "getpid", lambda: -1)
    guard._on_signal(signal.SIGTERM, None)
    assert calls == [("previous", signal.SIGTERM)]


def test_close_group_deletes_through_the_shared_close_logic(monkeypatch):
    monkeypatch.setattr(jit_guard.atexit, "register", lambda function: None)
    plugin = jit_guard.CallbackModule(display=Display())
    monkeypatch.setattr(plugin, "get_option", {"auth_source": "env", "client_id": "c", "secret": "s3cret", "tenant": "t"}.get)
    connected = []

    def connect(settings, subscription_id):
        connected.append(settings)
        return SimpleNamespace(subscription_id=subscription_id)

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
    plugin.v2_runner_on_ok(result("jitaccess.azure.jit_request", {"changed": True, "opened": [opened(VM1), opened(VM1, 80)]}))
    plugin.v2_playbook_on_stats(None)
    assert seen["subscription"] == SUB
    assert [settings["client_id"] for settings in connected] == ["c"]
    assert seen["targets"] == [{"vm_id": VM1, "ports": [22, 80], "sources": ["127.0.0.1"]}]
    text = "\n".join(plugin._display.lines)
    assert "closing 2 JIT accesses" in text and "closed app-1 port 22 from 127.0.0.1" in text
    assert "s3cret" not in text
    assert plugin._open == {}
