"""Bounded exposure under SIGKILL (issue 14 section 6): access opened with a lease lapses by itself
one lease after the controller dies, and a guarded run that lives for hours keeps working access.

* SIGKILL to the whole process group of ansible-playbook (what AWX's cancel does) at five points
  of playbooks/configure_with_jit.yml run with ``jit_access_lease``: during the initiate, during
  the wait for the rules, during configuration, during the close, and at the end. Nothing runs
  afterwards - no ``always``, no callback. With armsim's clock advanced by one lease (measured
  from the last request the run sent), zero allow rules of that run remain, another party's
  access is untouched.
* A two-hour guarded run (virtual clock, 60 s steps) keeps access through the data-plane gate at
  every step, with exactly one initiate per policy per renewal cycle.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from reltools import Background, jit_rules
from roles_support import PLAYBOOKS, gate_open, write_inventory

ARMSIM_SEED = "reliability.yaml"
ARMSIM_OPTIONS = {"apply_delay": 0}
OURS = "127.0.0.1"
OTHER = "203.0.113.50"
LEASE = 600  # 10 minutes
RENEW_BEFORE = 180  # jit_guard renews a 10-minute lease when 3 minutes are left
HOSTS = [("app-3", "rg-app"), ("db-1", "rg-db")]  # app-3: subnet + NIC NSG; db-1: another policy
GUARD_ENV = {
    "ANSIBLE_CALLBACKS_ENABLED": "record_results,jitaccess.azure.jit_guard",
    "JIT_GUARD_LEASE_CHECK_INTERVAL": "0.1",
}
POINTS = ("during_initiate", "during_wait", "during_configuration", "during_close", "at_end")


def _ops(sim):
    return sim.stats()["by_operation"]


def _quiet(sim):
    """Every request armsim received has been answered, and no initiated request awaits its apply."""
    stats = sim.stats()
    return stats["requests"] == sum(stats["by_status"].values()) and sim.admin("GET", "/applies")["due"] == 0


def _wait(predicate, what, run=None, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        if run is not None:
            assert run.proc.poll() is None, "ansible-playbook ended before %s:\n%s" % (what, run.output()[-4000:])
        assert time.monotonic() < deadline, "%s never came" % what + (":\n" + run.output()[-4000:] if run else "")
        time.sleep(0.05)


def _ours(sim):
    return [rule for rule in jit_rules(sim.state()) if rule["sources"] == [OURS]]


def _theirs(sim):
    return [rule for rule in jit_rules(sim.state()) if rule["sources"] == [OTHER]]


def _open_for_another_party(sim):
    _cred, security, _network, _compute = sim.sdk_clients()
    end = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    vm = "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-2" % sim.info["subscription_id"]
    body = {"virtualMachines": [{"id": vm, "ports": [{"number": 22, "allowedSourceAddressPrefix": OTHER, "endTimeUtc": end}]}], "justification": "another team"}
    security.jit_network_access_policies.initiate("rg-app", "westeurope", "default", io.BytesIO(json.dumps(body).encode()), content_type="application/json")
    _wait(lambda: _theirs(sim), "the other party's access")
    return _theirs(sim)


def _requests_per_policy(sim):
    return {policy["id"].lower(): len(policy["properties"].get("requests") or []) for policy in sim.state()["jit_policies"]}


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_leaves_no_access_one_lease_later(armsim, tmp_path, point):
    theirs = _open_for_another_party(armsim)
    workdir = str(tmp_path / point)
    os.makedirs(workdir)
    inventory = write_inventory(armsim, os.path.join(workdir, "inventory.ini"), HOSTS, group="jit_targets")
    configure = os.path.join(workdir, "configure.yml")
    with open(configure, "w", encoding="utf-8") as stream:  # ends only when killed
        stream.write("- name: Long configuration\n  ansible.builtin.wait_for:\n    path: %s/never\n    timeout: 600\n" % workdir)
    wrapper = os.path.join(workdir, "run.yml")
    with open(wrapper, "w", encoding="utf-8") as stream:
        stream.write(
            "- import_playbook: %s\n"
            "- name: After the close\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: Work after the close\n      ansible.builtin.wait_for:\n        path: %s/never\n        timeout: 600\n"
            % (os.path.join(PLAYBOOKS, "configure_with_jit.yml"), workdir)
        )
    extra = {
        "jit_access_ports": [22],
        "jit_access_source_address_prefixes": [OURS],
        "jit_access_duration": "2h",
        "jit_access_lease": "10m",
        "jit_access_port_search_regex": "^armsim",
        "jit_access_port_timeout": 30,
        "configure_with_jit_marker": workdir + "/{{ inventory_hostname }}.txt",
    }
    if point == "during_configuration":
        extra["configure_with_jit_tasks"] = configure
    armsim.reset_stats()
    if point == "during_initiate":  # the initiate arrives and is held; the run dies before the answer
        armsim.fault(method="POST", path_contains="/initiate", kind="barrier", parties=2, timeout_ms=3000, times=1)
    if point == "during_wait":
        armsim.config(apply_hold=True)
    if point == "during_close":
        armsim.fault(method="DELETE", path_contains="securityRules", kind="latency", latency_ms=3000, times=-1)
    run = Background(armsim, wrapper, workdir, inventory=inventory, env=GUARD_ENV, args=("-e", json.dumps(extra)), new_session=True)
    try:
        if point == "during_initiate":
            _wait(lambda: _ops(armsim).get("POST initiate", 0) >= 1, "the initiate", run)
        elif point == "during_wait":
            _wait(lambda: _ops(armsim).get("POST initiate", 0) >= 2, "both initiates", run)
        elif point == "during_configuration":
            _wait(lambda: "TASK [Long configuration]" in run.output(), "the configuration task", run)
        elif point == "during_close":
            _wait(lambda: _ops(armsim).get("DELETE securityRules", 0) >= 1, "the first rule deletion", run)
        else:
            _wait(lambda: "TASK [Work after the close]" in run.output(), "the play after the close", run)
        open_at_kill = _ours(armsim)
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.wait(30)
        if point == "during_wait":
            armsim.admin("POST", "/apply")  # Defender applies what the dead run initiated
        _wait(lambda: _quiet(armsim), "armsim to answer every request of the dead run")
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
        armsim.clear_faults()
        armsim.config(apply_hold=False)
    output = run.output()
    left = _ours(armsim)
    if point in ("during_initiate", "during_wait", "during_configuration"):
        # without the lease these would stay for the 2 h duration: the test fails on a run that
        # requests the duration at once
        assert left, "nothing of the run was open after the kill: the point was missed\n" + output[-3000:]
    if point == "during_close":
        assert open_at_kill, "nothing was open when the close was killed: the point was missed\n" + output[-3000:]
    armsim.advance(LEASE)
    assert _ours(armsim) == [], "%s: allow rules of the killed run still open one lease later: %s" % (point, _ours(armsim))
    assert _theirs(armsim) == theirs, "another party's access was cut"


def test_a_two_hour_guarded_run_keeps_working_access_with_one_initiate_per_policy_per_cycle(armsim, tmp_path):
    release = tmp_path / "release"
    vms = [{"name": name, "resource_group": group} for name, group in HOSTS]
    plays = [
        {
            "name": "two hours of work",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "open",
                    "jitaccess.azure.jit_request": {
                        "virtual_machines": vms,
                        "ports": [22],
                        "source_address_prefixes": [OURS],
                        "duration": "3h",
                        "lease": "10m",
                    },
                },
                {"name": "long work", "ansible.builtin.wait_for": {"path": str(release), "timeout": 900}},
                {"name": "close", "jitaccess.azure.jit_request": {"virtual_machines": vms, "ports": [22], "state": "absent"}},
            ],
        }
    ]
    run = Background(armsim, plays, str(tmp_path / "run"), env=GUARD_ENV)
    gates = armsim.gates()
    ports = [gates["%s:22" % name]["listen_port"] for name, _group in HOSTS]
    try:
        _wait(lambda: "TASK [long work]" in run.output(), "the long task", run)
        start = _requests_per_policy(armsim)
        assert sorted(start.values()) == [1, 1], start  # one initiate per policy opened both VMs
        steps = 120  # two hours of 60 s
        for _step in range(steps):
            reads = _ops(armsim).get("GET jitNetworkAccessPolicies", 0)
            armsim.advance(60)
            assert all(gate_open(port) for port in ports), "access lapsed during the run:\n" + run.output()[-3000:]
            # two checks of both policies after the step: any renewal due has been sent and applied
            _wait(lambda reads=reads: _ops(armsim).get("GET jitNetworkAccessPolicies", 0) >= reads + 4, "the guard's checks", run)
        armsim.advance(RENEW_BEFORE)  # the last renewal is no longer being applied when the run closes
        per_policy = _requests_per_policy(armsim)
        release.write_text("done")
        rc = run.wait(120)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    output = run.output()
    assert rc == 0, output[-4000:]
    cycle = LEASE - RENEW_BEFORE  # a renewal every 7 minutes
    # 1 open + one renewal per cycle (120 min / 7 min = 17), per policy; the clock moved a little
    # more than 2 h of steps (real time passes too), so one more renewal is allowed
    for policy, count in per_policy.items():
        assert 1 + (steps * 60) // cycle <= count <= 2 + (steps * 60) // cycle, (policy, count)
    assert output.count("jit_guard: renewed 2 leases") == 0  # one lease per policy: never batched wrongly
    assert output.count("jit_guard: renewed 1 lease on JIT policy") == sum(per_policy.values()) - 2
    assert _ours(armsim) == []
    assert all(not gate_open(port) for port in ports)


def test_a_close_right_after_a_renewal_leaves_nothing_open(armsim, tmp_path):
    """The renewal is initiated, the run closes before Azure applies it, then Azure applies it: the
    rules come back after the close task deleted them. jit_guard knows it renewed that access after
    the close began and deletes the rules when they appear, at the end of the run."""
    release = tmp_path / "release"
    vms = [{"name": "app-3", "resource_group": "rg-app"}]
    plays = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "open",
                    "jitaccess.azure.jit_request": {
                        "virtual_machines": vms,
                        "ports": [22],
                        "source_address_prefixes": [OURS],
                        "duration": "1h",
                        "lease": "10m",
                    },
                },
                {"name": "long work", "ansible.builtin.wait_for": {"path": str(release), "timeout": 300}},
                {"name": "close", "jitaccess.azure.jit_request": {"virtual_machines": vms, "ports": [22], "state": "absent"}},
            ],
        }
    ]
    run = Background(armsim, plays, str(tmp_path / "run"), env=dict(GUARD_ENV, JIT_GUARD_PENDING_TIMEOUT="120"))
    try:
        _wait(lambda: "TASK [long work]" in run.output(), "the long task", run)
        armsim.config(apply_hold=True)
        armsim.advance(LEASE - RENEW_BEFORE + 1)  # the renewal is due
        _wait(lambda: "jit_guard: renewed 1 lease" in run.output(), "the renewal", run)
        assert len(_ours(armsim)) == 2  # the first request's rules (subnet and NIC NSG)
        release.write_text("done")
        _wait(lambda: "waiting up to" in run.output(), "the guard's wait at the end of the run", run)
        assert _ours(armsim) == []  # the close task deleted what was there
        armsim.admin("POST", "/apply")  # Azure applies the renewal now: its rules appear again
        rc = run.wait(120)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        armsim.config(apply_hold=False)
    output = run.output()
    assert rc == 0, output[-4000:]
    assert _ours(armsim) == [], output[-3000:]
    assert "jit_guard: closed app-3 port 22 from 127.0.0.1" in output


def test_a_lease_without_the_guard_fails_before_any_write(armsim):
    from harness import run_module

    armsim.reset_stats()
    result = run_module(
        armsim,
        "jit_request",
        {"virtual_machines": [{"name": "app-3", "resource_group": "rg-app"}], "ports": [22], "source_address_prefixes": [OURS], "lease": "10m"},
        expect_failure=True,
    )
    assert "lease needs the jitaccess.azure.jit_guard callback" in result["msg"]
    assert armsim.stats()["writes"] == 0
