"""Helpers for the reliability suite: admin tasks inside playbooks, state snapshots, checks.

Many scenarios run as tasks of ONE ansible-playbook run to keep the suite fast: each scenario
resets armsim through its admin API (an ``ansible.builtin.uri`` task on the loopback admin port),
sets its faults, runs the task under test with ``ignore_errors``, then records armsim's stats and
state with two more admin tasks. The recording callback of tests/integration keeps every result.
"""

from __future__ import annotations

import json
import os
import re

from roles_support import jit_rules_in_state as jit_rules

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "MODULE FAILURE", "module_stderr")


def vm_id(resource_group, name, subscription=SUBSCRIPTION):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (subscription, resource_group, name)


def policy_key(resource_group, location, name="default", subscription=SUBSCRIPTION):
    """Lower-cased JIT policy id, as the keys of :func:`policies`."""
    return (
        "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Security/locations/%s/jitNetworkAccessPolicies/%s"
        % (subscription, resource_group, location, name)
    ).lower()


def vm(name, resource_group, **extra):
    return dict({"name": name, "resource_group": resource_group}, **extra)


# --- admin tasks ---------------------------------------------------------------------------------


ACTION_PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "action_plugins")
ADMIN_ENV = {"ANSIBLE_ACTION_PLUGINS": ACTION_PLUGINS}
"""Environment for run_playbook when a playbook uses admin tasks."""


def admin_task(sim, calls, name):
    """One task calling armsim's admin API: ``calls`` is a list of (method, path[, body])."""
    return {
        "name": name,
        "armsim_admin": {
            "url": sim.info["admin_url"],
            "calls": [{"method": call[0], "path": call[1], "body": call[2] if len(call) > 2 else None} for call in calls],
        },
        "delegate_to": "localhost",
        "run_once": True,
    }


def scenario(sim, sid, task, *, faults=(), setup=(), config=None):
    """Tasks for one scenario: reset armsim, ``setup`` tasks, zero the counters, set ``faults``,
    run ``task`` (named ``sid``, errors ignored), then record stats and state (``<sid> after``)
    and clear the faults. Run the playbook with ``env=ADMIN_ENV``."""
    calls = [("POST", "/reset", {})]
    if config:
        calls.append(("POST", "/config", config))
    tasks = []
    if setup:
        tasks.append(admin_task(sim, calls, "%s reset" % sid))
        tasks += list(setup)
        calls = []
    calls.append(("POST", "/stats/reset", {}))
    calls += [("POST", "/faults", fault) for fault in faults]
    tasks.append(admin_task(sim, calls, "%s arm" % sid))
    tasks.append(dict(task, name=sid, ignore_errors=True))
    tasks.append(admin_task(sim, [("GET", "/stats"), ("GET", "/state"), ("DELETE", "/faults")], "%s after" % sid))
    return tasks


def outcome(run, sid):
    """(task result, stats, state) of a scenario."""
    stats, state, _cleared = run.result("%s after" % sid)["responses"]
    return run.result(sid), stats, state


# --- state ---------------------------------------------------------------------------------------


def _port_key(port):
    prefixes = port.get("allowedSourceAddressPrefixes") or [port.get("allowedSourceAddressPrefix")]
    return (int(port["number"]), str(port.get("protocol")).upper(), tuple(sorted(str(p) for p in prefixes)), port.get("maxRequestAccessDuration"))


def policies(state):
    """``{policy id lower: {vm id lower: sorted port keys}}`` from armsim state."""
    result = {}
    for policy in state["jit_policies"]:
        entries = {}
        for entry in policy["properties"].get("virtualMachines", []):
            entries[entry["id"].lower()] = tuple(sorted(_port_key(port) for port in entry.get("ports", [])))
        result[policy["id"].lower()] = entries
    return result


def requests_of(state):
    """Every JIT request record: (policy id lower, vm id lower, port, sources, status)."""
    found = []
    for policy in state["jit_policies"]:
        for request in policy["properties"].get("requests", []):
            for entry in request.get("virtualMachines", []):
                for port in entry.get("ports", []):
                    sources = port.get("allowedSourceAddressPrefixes") or [port.get("allowedSourceAddressPrefix")]
                    found.append((policy["id"].lower(), entry["id"].lower(), int(port["number"]), tuple(sources), port.get("status")))
    return found


def deny_layout(state):
    """JIT deny rules without their names (armsim names them afresh on every reset)."""
    return sorted((rule["nsg"], rule["destination"], tuple(rule["ports"]), tuple(rule["sources"]), rule["priority"]) for rule in jit_rules(state, "deny"))


JIT_RULE_NAME = re.compile(r"(MicrosoftDefenderForCloud|SecurityCenter)-JITRule[-_]-?\d+[-_][0-9A-Fa-f]{32}")


def without_rule_names(data):
    """``data`` as JSON text with every JIT rule name replaced by a placeholder."""
    return JIT_RULE_NAME.sub("JITRULE", json.dumps(data, sort_keys=True))


def all_rules(state):
    """Every custom rule as (nsg, name, json of properties): compare whole rule sets."""
    return sorted(
        (nsg["name"], rule["name"], json.dumps(rule["properties"], sort_keys=True))
        for nsg in state["network_security_groups"]
        for rule in nsg["properties"].get("securityRules", [])
    )


def lost_entries(before, after, touched=()):
    """``[(policy id, vm id)]`` of the entries of ``before`` missing or changed in ``after``, except
    the ``touched`` VM ids (which the caller checks). Computed from armsim's state, never assumed."""
    touched = {item.lower() for item in touched}
    lost = []
    for policy_id, entries in before.items():
        for vm_key, ports in entries.items():
            if vm_key not in touched and after.get(policy_id, {}).get(vm_key) != ports:
                lost.append((policy_id, vm_key))
    return lost


def assert_entries_whole(ledger, before, after, touched=()):
    """Record the entries lost in the closing table, then assert there are none: the row is
    written whether or not the assertion holds, so the table cannot read 0 over a failure."""
    lost = lost_entries(before, after, touched)
    ledger.add(entries_lost=len(lost))
    assert not lost, "policy entries lost or damaged: %s" % lost


def state_changes(before, after):
    """How many JIT policies and JIT rules differ between two armsim states: the writes that took
    effect (a refused request counted by armsim's stats changes nothing here)."""
    policies_before, policies_after = policies(before), policies(after)
    changed = sum(1 for key in set(policies_before) | set(policies_after) if policies_before.get(key) != policies_after.get(key))

    def rules(state):  # names left out: armsim generates new ones on every reset
        return {json.dumps(dict(rule, name=None, kind=kind), sort_keys=True) for kind in ("allow", "deny") for rule in jit_rules(state, kind)}

    rules_before, rules_after = rules(before), rules(after)
    return changed + len(rules_before ^ rules_after)


# --- output checks -------------------------------------------------------------------------------


def assert_clean_failure(result, *needles):
    """A failed task whose msg names every needle (case-insensitive) and carries no traceback."""
    assert result.get("failed"), "expected a failure, got %s" % json.dumps(result, default=str)[:2000]
    msg = str(result.get("msg", ""))
    for marker in TRACEBACK_MARKERS:
        assert marker not in msg and marker not in result, "traceback in %s" % msg[:2000]
    for needle in needles:
        assert needle.lower() in msg.lower(), "%r not in msg: %s" % (needle, msg)
    return msg


def assert_no_secret(secret, *texts):
    assert secret
    for text in texts:
        assert secret not in (text or ""), "the client secret appears in the output"


# --- background ansible-playbook processes -------------------------------------------------------


class Background:
    """An ansible-playbook process started in the background (for concurrency and signals)."""

    def __init__(self, sim, plays, workdir, *, inventory=None, env=None, args=(), new_session=False):
        import subprocess
        import sys

        import yaml
        from harness import VENV_BIN, ansible_env

        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        if isinstance(plays, str) and os.path.exists(plays):
            playbook = plays
        else:
            playbook = os.path.join(workdir, "playbook.yml")
            with open(playbook, "w", encoding="utf-8") as stream:
                yaml.safe_dump(plays, stream, sort_keys=False)
        if inventory is None:
            inventory = os.path.join(workdir, "inventory.ini")
            with open(inventory, "w", encoding="utf-8") as stream:
                stream.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        self.record = os.path.join(workdir, "results.jsonl")
        self.log_path = os.path.join(workdir, "output.log")
        self.log = open(self.log_path, "w+", encoding="utf-8")  # noqa: SIM115 - closed in wait()
        run_env = ansible_env(sim, dict(env or {}, RECORD_RESULTS_PATH=self.record))
        command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook, *args]
        # new_session: the run gets its own process group, which a test can SIGKILL as a whole (AWX's cancel)
        self.proc = subprocess.Popen(command, env=run_env, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=new_session)

    def group_alive(self):
        """Whether a process of the run's group (``new_session=True``) still exists: workers, modules."""
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def processes_alive(self):
        """Whether any process of the run still exists, in whatever session: Ansible's workers call
        setsid, so a module outlives the run's process group. Each inherits the run's environment,
        which names this run's results file."""
        marker = ("RECORD_RESULTS_PATH=%s" % self.record).encode() + b"\0"
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % pid, "rb") as stream:
                    if marker in stream.read():
                        return True
            except OSError:  # ended meanwhile, or not ours to read
                continue
        return False

    def output(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as stream:
            return stream.read()

    def results(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record, encoding="utf-8") as stream:
            return [json.loads(line) for line in stream if line.strip()]

    def result(self, task):
        matches = [entry["result"] for entry in self.results() if entry["task"] == task]
        assert matches, "no result for %r:\n%s" % (task, self.output()[-3000:])
        return matches[-1]

    def wait(self, timeout=300):
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
        return self.proc.returncode
