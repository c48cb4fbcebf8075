"""Concurrency around access: jit_fleet rolling out while jit_request opens access, and two
jit_access plays on overlapping hosts (the behaviour documented in docs/reliability.md).
"""

import json
import os
import socket
import time

from harness import run_playbook
from reltools import ADMIN_ENV, Background, admin_task, jit_rules, policies, requests_of, vm, vm_id
from roles_support import PLAYBOOKS, write_inventory

ARMSIM_SEED = "reliability.yaml"
ARMSIM_OPTIONS = {"apply_delay": 3}
SOURCE = "198.51.100.7"


def _wait(predicate, runs, timeout=120, what="the moment"):
    deadline = time.monotonic() + timeout
    while not predicate():
        for run in runs:
            assert run.proc.poll() is None, "a run ended before %s:\n%s" % (what, run.output()[-3000:])
        assert time.monotonic() < deadline, "%s never came" % what
        time.sleep(0.1)


def test_fleet_rollout_while_access_opens(armsim, tmp_path, ledger):
    before = policies(armsim.state())
    request = Background(
        armsim,
        [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "open",
                        "jitaccess.azure.jit_request": {
                            "virtual_machines": [vm("app-1", "rg-app"), vm("db-1", "rg-db")],
                            "ports": [22],
                            "source_address_prefixes": [SOURCE],
                            "duration": "1h",
                        },
                    }
                ],
            }
        ],
        str(tmp_path / "request"),
    )
    # the rollout writes both policies while the initiated request is being applied (3 s delay)
    _wait(lambda: armsim.stats()["by_operation"].get("POST initiate", 0) >= 1, [request], what="the first initiate")
    fleet = Background(
        armsim,
        [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "jitaccess.azure.jit_fleet"}]}],
        str(tmp_path / "fleet"),
        args=("-e", json.dumps({"jit_fleet_mode": "enforce", "jit_fleet_report_dir": str(tmp_path / "report")})),
    )
    assert fleet.wait(180) == 0, fleet.output()[-3000:]
    assert request.wait(180) == 0, request.output()[-3000:]
    opened = request.result("open")
    assert sorted(item["vm_name"] for item in opened["opened"]) == ["app-1", "db-1"]
    state = armsim.state()
    after = policies(state)
    ops = armsim.stats()["by_operation"]
    assert ops["PUT jitNetworkAccessPolicies"] == 2, ops  # the rollout wrote both policies, during the open
    # every VM the fleet enforced is in, every earlier entry is unchanged
    for policy_id, entries in before.items():
        for key, ports in entries.items():
            assert after[policy_id][key] == ports
    enforced = {vm_id(group, name).lower() for group, name in (("rg-app", "app-4"), ("rg-app", "app-5"), ("rg-app", "win-1"), ("rg-db", "db-2"))}
    assert enforced <= {key for entries in after.values() for key in entries}
    # the open access survived the rollout: requests recorded, allow rules in place
    assert sorted((r[1].rsplit("/", 1)[1], r[4]) for r in requests_of(state)) == [("app-1", "Initiated"), ("db-1", "Initiated")]
    assert sorted((r["nsg"], r["destination"]) for r in jit_rules(state) if r["sources"] == [SOURCE]) == [("nsg-app", "10.1.0.4"), ("nsg-db", "10.2.0.4")]
    ledger.add(cases=1, concurrent_rounds=1)


def _gate_admits(armsim, name):
    """True when armsim's gate for <name>:22 lets the controller (127.0.0.1) in."""
    port = armsim.info["gates"]["%s:22" % name]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(6).startswith(b"armsim")
    except OSError:
        return False


def test_overlapping_jit_access_plays(armsim, tmp_path, ledger):
    """Play 1 (app-1, app-3) and play 2 (app-3, db-1), both with the role's defaults (source: the
    controller's address). Play 1 closes while play 2 is still configuring app-3."""
    armsim.config(apply_delay=0.5)
    runs = {}
    for play, hosts in (("one", [("app-1", "rg-app"), ("app-3", "rg-app")]), ("two", [("app-3", "rg-app"), ("db-1", "rg-db")])):
        workdir = tmp_path / play
        workdir.mkdir()
        flag = workdir / "go"
        (workdir / "configure.yml").write_text("- name: Configure until the test says go\n  ansible.builtin.wait_for:\n    path: %s\n    timeout: 120\n" % flag)
        inventory = write_inventory(armsim, str(workdir / "inventory.ini"), hosts, group="jit_targets")
        extra = {
            "jit_access_ports": [22],
            "jit_access_duration": "30m",
            "jit_access_port_search_regex": "^armsim",
            "configure_with_jit_tasks": str(workdir / "configure.yml"),
            "configure_with_jit_marker": str(workdir) + "/{{ inventory_hostname }}.txt",
        }
        runs[play] = (
            Background(armsim, os.path.join(PLAYBOOKS, "configure_with_jit.yml"), str(workdir), inventory=inventory, args=("-e", json.dumps(extra))),
            flag,
        )
        _wait(lambda run=runs[play][0]: "TASK [Configure until the test says go]" in run.output(), [runs[play][0]], what="play %s configuring" % play)
    one, two = runs["one"][0], runs["two"][0]
    both_open = {(r["nsg"], r["destination"]) for r in jit_rules(armsim.state())}
    assert both_open == {("nsg-app", "10.1.0.4"), ("nsg-app", "10.1.0.6"), ("nsg-app3-nic", "10.1.0.6"), ("nsg-db", "10.2.0.4")}
    assert _gate_admits(armsim, "app-3")

    runs["one"][1].write_text("go")  # play 1 finishes and closes its batch
    assert one.wait(120) == 0, one.output()[-3000:]
    after_first_close = {(r["nsg"], r["destination"]) for r in jit_rules(armsim.state())}
    # DOCUMENTED BEHAVIOUR: the close of play 1 deletes every JIT allow rule for port 22 of its
    # VMs, whatever the source -- including app-3's, which play 2 still uses. Play 2 keeps db-1.
    assert after_first_close == {("nsg-db", "10.2.0.4")}
    assert not _gate_admits(armsim, "app-3"), "play 2's access to app-3 was expected to be cut"
    assert _gate_admits(armsim, "db-1")

    runs["two"][1].write_text("go")
    assert two.wait(120) == 0, two.output()[-3000:]
    assert jit_rules(armsim.state()) == []
    ledger.add(cases=1, concurrent_rounds=1)


def test_overlapping_access_with_distinct_sources(armsim, ledger):
    """The same overlap with explicit, distinct sources: a close limited to its own source leaves
    the other play's rule alone -- but Azure keeps one request per VM and port, so the second
    open already replaced the first one's access to the shared VM."""
    armsim.config(apply_delay=0)

    def request(name, vms, source, state="present"):
        args = {"virtual_machines": [vm(*item) for item in vms], "ports": [22], "source_address_prefixes": [source]}
        args.update({"duration": "30m"} if state == "present" else {"state": "absent"})
        return [{"name": name, "jitaccess.azure.jit_request": args}, admin_task(armsim, [("GET", "/state")], "%s state" % name)]

    one, two = "198.51.100.1", "198.51.100.2"
    tasks = request("open one", [("app-1", "rg-app"), ("app-3", "rg-app")], one)
    tasks += request("open two", [("app-3", "rg-app"), ("db-1", "rg-db")], two)
    tasks += request("close one", [("app-1", "rg-app"), ("app-3", "rg-app")], one, state="absent")
    run = run_playbook(armsim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], env=ADMIN_ENV)
    assert run.rc == 0, run.stdout[-3000:]

    def rules(name):
        return sorted((r["destination"], r["sources"][0]) for r in jit_rules(run.result("%s state" % name)["responses"][0]))

    assert rules("open one") == [("10.1.0.4", one), ("10.1.0.6", one), ("10.1.0.6", one)]
    # the newer request for app-3 port 22 supersedes the older one: play one lost app-3 here
    assert rules("open two") == [("10.1.0.4", one), ("10.1.0.6", two), ("10.1.0.6", two), ("10.2.0.4", two)]
    assert rules("close one") == [("10.1.0.6", two), ("10.1.0.6", two), ("10.2.0.4", two)]
    ledger.add(cases=1)
