"""SIGINT / SIGTERM to ansible-playbook at five points of playbooks/configure_with_jit.yml, with the
jit_guard callback enabled: within 30 s no allow rule opened by that run remains, the access of
another party survives, and no policy entry or deny rule is damaged.

The run is the shipped playbook, imported by a wrapper that adds one play after it (so that
"after close" is a moment of the same run). Windows are made with armsim: a latency fault on the
VM list (before open), an apply delay (during wait), a long configuration task (during
configuration), latency on the rule deletions (during close).
"""

from __future__ import annotations

import os
import signal
import time

from reltools import Background, assert_no_secret, deny_layout, jit_rules, policies
from roles_support import PLAYBOOKS, write_inventory

OURS = "127.0.0.1"  # the run's source: armsim's gates admit the controller's loopback address
OTHER = "203.0.113.50"  # another party's access to app-2, open before the run
HOSTS = [("app-3", "rg-app"), ("db-1", "rg-db")]  # app-3: subnet + NIC NSG; db-1: another policy
GUARD_ENV = {"ANSIBLE_CALLBACKS_ENABLED": "record_results,jitaccess.azure.jit_guard"}
POINTS = ("before_open", "during_wait", "during_configuration", "during_close", "after_close")
CLOSE_WITHIN = 30


def _ops(sim):
    return sim.stats()["by_operation"]


def _wait_for(predicate, run, timeout=120, what="the moment"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert run.proc.poll() is None, "ansible-playbook ended before %s:\n%s" % (what, run.output()[-4000:])
        assert time.monotonic() < deadline, "%s never came:\n%s" % (what, run.output()[-4000:])
        time.sleep(0.1)


def interrupt(sim, tmp_path, point, signum):
    """Run configure_with_jit.yml, send ``signum`` at ``point``; return a dict of observations."""
    _cred, security, _network, _compute = sim.sdk_clients()
    # another party's access, from another source
    import io
    import json
    from datetime import datetime, timedelta, timezone

    end = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    body = {
        "virtualMachines": [
            {
                "id": "/subscriptions/%s/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/app-2" % sim.info["subscription_id"],
                "ports": [{"number": 22, "allowedSourceAddressPrefix": OTHER, "endTimeUtc": end}],
            }
        ],
        "justification": "another team",
    }
    security.jit_network_access_policies.initiate("rg-app", "westeurope", "default", io.BytesIO(json.dumps(body).encode()), content_type="application/json")
    deadline = time.monotonic() + 20
    while True:
        before = sim.state()
        other_rules = [rule for rule in jit_rules(before) if rule["sources"] == [OTHER]]
        if other_rules:
            break
        assert time.monotonic() < deadline, "the other party's access was never applied"
        time.sleep(0.2)

    workdir = str(tmp_path / ("%s-%s" % (point, signal.Signals(signum).name)))
    os.makedirs(workdir, exist_ok=True)
    inventory = write_inventory(sim, os.path.join(workdir, "inventory.ini"), HOSTS, group="jit_targets")
    configure = os.path.join(workdir, "configure.yml")
    with open(configure, "w", encoding="utf-8") as stream:
        # says it runs (a marker), then works until the signal
        stream.write("- name: Long configuration\n  ansible.builtin.shell: touch %s/configuring && sleep 120\n  changed_when: false\n" % workdir)
    wrapper = os.path.join(workdir, "run.yml")
    with open(wrapper, "w", encoding="utf-8") as stream:
        stream.write(
            "- import_playbook: %s\n"
            "- name: After the close\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: Work after the close\n      ansible.builtin.shell: touch %s/after && sleep 120\n      changed_when: false\n"
            % (os.path.join(PLAYBOOKS, "configure_with_jit.yml"), workdir)
        )
    extra = {
        "jit_access_ports": [22],
        "jit_access_source_address_prefixes": [OURS],
        "jit_access_duration": "30m",
        "jit_access_port_search_regex": "^armsim",
        "jit_access_port_timeout": 30,
        "configure_with_jit_marker": workdir + "/{{ inventory_hostname }}.txt",
    }
    if point == "during_configuration":
        extra["configure_with_jit_tasks"] = configure
    sim.reset_stats()
    if point == "before_open":
        sim.fault(method="GET", path_contains="virtualMachines", kind="latency", latency_ms=4000, times=1)
    if point == "during_wait":
        sim.config(apply_delay=4)
    if point == "during_close":
        sim.fault(method="DELETE", path_contains="securityRules", kind="latency", latency_ms=3000, times=-1)

    run = Background(sim, wrapper, workdir, inventory=inventory, env=GUARD_ENV, args=("-e", json.dumps(extra)), new_session=True)
    initiated_at = None
    try:
        if point == "before_open":
            _wait_for(lambda: _ops(sim).get("GET virtualMachines", 0) >= 1, run, what="the VM list of the open")
        elif point == "during_wait":
            _wait_for(lambda: _ops(sim).get("POST initiate", 0) >= 2, run, what="both initiates")
            initiated_at = time.monotonic()
        elif point == "during_configuration":
            _wait_for(lambda: os.path.exists(os.path.join(workdir, "configuring")), run, what="the configuration task")
        elif point == "during_close":
            _wait_for(lambda: _ops(sim).get("DELETE securityRules", 0) >= 1, run, what="the first rule deletion")
        elif point == "after_close":
            _wait_for(lambda: os.path.exists(os.path.join(workdir, "after")), run, what="the play after the close")
        opened_before_signal = [rule for rule in jit_rules(sim.state()) if rule["sources"] == [OURS]]
        sent = time.monotonic()
        run.proc.send_signal(signum)
        # within 30 s: every process of the run has ended (a module too, in its worker's own
        # session: a module that outlived its run could still initiate) and the service has applied
        # whatever was initiated (no apply is due): from then on nothing opens or closes
        while run.proc.poll() is None or run.group_alive() or run.processes_alive() or sim.admin("GET", "/applies")["due"]:
            if time.monotonic() - sent > CLOSE_WITHIN:
                break
            time.sleep(0.1)
        closed_after = time.monotonic() - sent
        rc = run.wait(30)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        sim.clear_faults()
        sim.config(apply_delay=0.5)
    output = run.output()
    assert_no_secret(sim.info["client_secret"], output)
    after = sim.state()
    return {
        "rc": rc,
        "output": output,
        "left": [rule for rule in jit_rules(after) if rule["sources"] == [OURS]],
        "other_rules_before": other_rules,
        "other_rules_after": [rule for rule in jit_rules(after) if rule["sources"] == [OTHER]],
        "policies_before": policies(before),
        "policies_after": policies(after),
        "denies_before": deny_layout(before),
        "denies_after": deny_layout(after),
        "opened_before_signal": opened_before_signal,
        "closed_after": closed_after,
        "initiated_at": initiated_at,
        "ops": _ops(sim),
    }


def check(observed, point, signum):
    name = signal.Signals(signum).name
    tail = observed["output"][-3000:]
    assert not observed["left"], "%s at %s: allow rules of the run still open %.0f s later: %s\n%s" % (
        name,
        point,
        observed["closed_after"],
        observed["left"],
        tail,
    )
    assert observed["closed_after"] <= CLOSE_WITHIN, tail
    assert observed["rc"] != 0 or point == "after_close", tail
    assert observed["other_rules_after"] == observed["other_rules_before"], "another party's access was cut"
    assert observed["policies_after"] == observed["policies_before"], "policy entries damaged"
    assert observed["denies_after"] == observed["denies_before"], "deny rules changed"
    if point in ("during_configuration", "during_close"):
        assert observed["opened_before_signal"], "nothing was open at the signal: the point was missed"
        assert "jit_guard: %s received" % name in observed["output"], tail
    if point == "after_close":
        assert not observed["opened_before_signal"]
        # the play's own close (app-3: nsg-app + NIC NSG, db-1: nsg-db), nothing more
        assert observed["ops"].get("DELETE securityRules") == 3
    if point == "before_open":
        assert observed["ops"].get("POST initiate", 0) == 0, "the interrupted open initiated anyway"
    if point == "during_wait":
        # the task never returned: jit_guard knew the access from jit_request's record, waited for
        # the rules Azure applied after the signal and deleted them (app-3: 2 NSGs, db-1: 1)
        assert not observed["opened_before_signal"], "the rules were already applied: the point was missed"
        assert "jit_guard: %s received; closing 2 JIT accesses" % name in observed["output"], tail
        assert observed["ops"].get("DELETE securityRules") == 3, observed["ops"]
