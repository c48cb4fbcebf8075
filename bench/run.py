# Copyright (c) jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``make bench``: this collection against the naive per-VM approach, on armsim fleets.

    PYTHONPATH=tools .venv/bin/python bench/run.py [--quick] [--out DIR]

Phases, per fleet size (generated with ``python -m armsim fleet``):

* discovery -- one ``nsg_jit_facts`` task (real ansible-playbook, installed collection);
* rollout   -- ``playbooks/enable_jit_fleet.yml`` with ``jit_fleet_mode=enforce`` (discovery,
  one jit_policy call, discovery again, report) against ``bench/naive.py`` (GET + PUT per VM);
* rerun     -- the same again on the result (a second run);
* access    -- opening SSH for 10/100/500 hosts of a play: the jit_access role (one jit_request
  for the whole play) against one jit_request task per host; timed from the start of
  ansible-playbook until every host's port admits a connection (armsim data-plane gates),
  with armsim's apply delay at 2 s.

Reads and writes come from armsim's /stats; peak memory is the largest resident set of any process
of the measured command's tree (getrusage RUSAGE_CHILDREN, see rusage_exec.py). Writes
bench/results.json and bench/results.png (or DIR/results-quick.* with --quick), prints ratios
(ours / naive) and exits non-zero naming every missed target.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import yaml

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)

from armsim.profile import PROFILES as PROFILE_FIGURES  # noqa: E402
from armsim.testing import ArmSim  # noqa: E402

PYTHON = sys.executable
VENV_BIN = os.path.dirname(PYTHON)
INSTALLED = os.environ.get("BENCH_COLLECTIONS_PATH") or os.path.join(ROOT, ".build", "collections")
MANIFEST = os.path.join(INSTALLED, "ansible_collections", "jitaccess", "azure", "MANIFEST.json")

# Fleet size -> (resource groups, regions). One JIT policy per resource group (each group lives in
# one region), so VMs per policy is what the naive loop multiplies its writes by.
FLEETS = {100: (5, 2), 1000: (20, 5), 10000: (100, 5), 50000: (500, 5)}
ACCESS_HOSTS_FULL = [10, 100, 500]
ACCESS_HOSTS_QUICK = [10, 100]
ACCESS_GROUPS = 5  # the access fleet: Linux VMs with a data-plane gate on port 22, 5 policies
APPLY_DELAY = 2.0  # instant profile; the azure profile brings its own (tools/armsim/README.md, Profiles)
FORKS = 5  # Ansible's default, the same for both approaches
ACCESS_PORT_TIMEOUT = 120
PROFILES = ("instant", "azure")
# Under the azure profile a naive per-VM call costs its latency (about 1.1 s a VM): the naive
# loops run on a sample spread over every policy and are extrapolated linearly (marked so).
AZURE_NAIVE_SAMPLE = {"quick": 20, "full": 200}
AZURE_SIZES = {"quick": [100], "full": [100, 1000]}
AZURE_HOSTS = {"quick": [10], "full": [10, 100, 500]}


# --- measuring ---------------------------------------------------------------------------------
class Measured:
    def __init__(self, **values):
        self.__dict__.update(values)


def measure(command, *, env, cwd, log_path):
    """Run ``command`` under rusage_exec.py; wall time, rc, peak RSS (largest process), CPU."""
    usage_path = log_path + ".rusage.json"
    peak_tree = [0]
    done = threading.Event()
    with open(log_path, "w", encoding="utf-8") as log:
        start = time.monotonic()
        proc = subprocess.Popen(
            [PYTHON, os.path.join(BENCH, "rusage_exec.py"), usage_path, "--", *command], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )

        def sample():  # resident memory of the whole tree (forked workers counted in full)
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.wait(0.25):
                total = 0
                try:
                    for p in root.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_info().rss
                except psutil.Error:
                    return
                peak_tree[0] = max(peak_tree[0], total)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        wall = time.monotonic() - start
        done.set()
        sampler.join()
    with open(usage_path, encoding="utf-8") as stream:
        usage = json.load(stream)
    return Measured(
        rc=rc, wall_s=wall, peak_rss_mb=usage["maxrss_mb"], cpu_s=round(usage["user_s"] + usage["sys_s"], 2), tree_rss_mb=round(peak_tree[0] / 2**20, 1)
    )


def tail(path, lines=40):
    with open(path, encoding="utf-8", errors="replace") as stream:
        return "".join(stream.readlines()[-lines:])


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.work = tempfile.mkdtemp(prefix="jit-bench-")
        self.results = []
        self.checks = []  # (target, ok, detail)
        self.breakdown = {}  # per-task timings and calls per operation, by run label
        self.current = "instant"  # the armsim profile of the phase being measured
        self.notes = []
        self.errors = []
        # A private copy of the installed collection: a concurrent `make install` cannot pull it
        # from under a running measurement.
        self.collections = self.path("collections")
        shutil.copytree(os.path.dirname(MANIFEST), os.path.join(self.collections, "ansible_collections", "jitaccess", "azure"))

    # --- helpers ---------------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def ansible_env(self, sim, timer_path=None):
        env = dict(os.environ)
        env.update(sim.env())
        env.update(
            ANSIBLE_COLLECTIONS_PATH=self.collections,
            ANSIBLE_CALLBACK_PLUGINS=os.path.join(BENCH, "callback_plugins"),
            ANSIBLE_CALLBACKS_ENABLED="bench_timer",
            BENCH_TIMER_PATH=timer_path or os.devnull,
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_RETRY_FILES_ENABLED="False",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCALHOST_WARNING="False",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
            ANSIBLE_FORKS=str(FORKS),
            PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
        )
        return env

    def playbook(self, sim, label, playbook, inventory=None, extra_vars=None):
        """Run ansible-playbook, measured; returns (Measured, stats, per-task seconds)."""
        if inventory is None:
            inventory = self.path("localhost.ini")
            if not os.path.exists(inventory):
                with open(inventory, "w", encoding="utf-8") as stream:
                    stream.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % PYTHON)
        label = "%s-%s" % (self.current, label)
        timer = self.path(label + ".tasks.jsonl")
        command = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook]
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        sim.reset_stats()
        log = self.path(label + ".log")
        m = measure(command, env=self.ansible_env(sim, timer), cwd=self.work, log_path=log)
        stats = sim.stats()
        tasks = []
        if os.path.exists(timer):
            with open(timer, encoding="utf-8") as stream:
                tasks = [json.loads(line) for line in stream if line.strip()]
        self.breakdown.setdefault("calls", {})[label] = stats["by_operation"]
        if m.rc != 0:
            raise RuntimeError("%s: ansible-playbook exited %d:\n%s" % (label, m.rc, tail(log)))
        return m, stats, tasks

    def record(self, phase, approach, vms, hosts, m, stats, *, extrapolated_from=None, scale=1.0):  # noqa: PLR0917
        rec = {
            "phase": phase,
            "approach": approach,
            "profile": self.current,
            "vms": vms,
            "hosts": hosts,
            "wall_s": round(m.wall_s * scale, 2),
            "cpu_s": round(m.cpu_s * scale, 2),
            "reads": int(round(stats["reads"] * scale)),
            "writes": int(round(stats["writes"] * scale)),
            "initiates": int(round(stats["by_operation"].get("POST initiate", 0) * scale)),
            "throttled": int(round((stats.get("by_status") or {}).get("429", 0) * scale)),
            "peak_rss_mb": m.peak_rss_mb,
        }
        if extrapolated_from:
            rec["extrapolated_from"] = extrapolated_from
        self.results.append(rec)
        label = "%-7s %-9s %-10s vms=%-6s hosts=%-4s" % (self.current, phase, approach, vms, hosts if hosts is not None else "-")
        unit = "hosts" if phase == "access" else "VMs"
        extra = " (extrapolated linearly from %d %s)" % (extrapolated_from, unit) if extrapolated_from else ""
        print(
            "  %s wall %7.2fs  reads %6d  writes %6d  initiates %4d  429s %3d  peak RSS %6.1f MB (tree %6.1f MB, CPU %6.1fs)%s"
            % (label, rec["wall_s"], rec["reads"], rec["writes"], rec["initiates"], rec["throttled"], m.peak_rss_mb, m.tree_rss_mb, m.cpu_s, extra),
            flush=True,
        )
        return rec

    @staticmethod
    def show_tasks(tasks, top=4):
        """Print the slowest tasks of a play (where the time went)."""
        slow = sorted(tasks, key=lambda t: -t["seconds"])[:top]
        if slow:
            print("      slowest tasks: " + "; ".join("%s %.1fs" % (t["task"].split(" : ")[-1][:60], t["seconds"]) for t in slow), flush=True)

    def check(self, target, ok, detail, enforced=True):
        """A target; ``enforced=False`` (wall-time ratios in quick mode, where a busy machine moves
        them) reports without failing the run."""
        self.checks.append({"target": target, "ok": bool(ok), "detail": detail, "enforced": enforced})
        print("  [%s] %s: %s" % ("ok" if ok else ("MISSED" if enforced else "missed, reported only"), target, detail), flush=True)

    # --- fleets ----------------------------------------------------------------------------------
    def fleet_seed(self, vms, groups, locations, extra_args=()):
        out = self.path("fleet-%d.yaml" % vms)
        env = dict(os.environ, PYTHONPATH=TOOLS)
        cmd = [PYTHON, "-m", "armsim", "fleet", "--vms", str(vms), "--resource-groups", str(groups), "--locations", str(locations), "-o", out, *extra_args]
        subprocess.run(cmd, env=env, check=True)
        return out

    @staticmethod
    def policy_map(state):
        """{(rg, location, name): {vm id lower: sorted port numbers}} from armsim's state."""
        found = {}
        for policy in state.get("jit_policies", []):
            parts = policy["id"].split("/")
            key = (parts[4].lower(), policy.get("location", parts[-3]).lower(), policy["name"].lower())
            found[key] = {vm["id"].lower(): sorted(p["number"] for p in vm.get("ports", [])) for vm in policy["properties"].get("virtualMachines", [])}
        return found

    @staticmethod
    def naive_targets(state):
        """The VMs the collection put under JIT, as the naive loop's work list (VM name order)."""
        targets = []
        for policy in state.get("jit_policies", []):
            parts = policy["id"].split("/")
            for vm in policy["properties"].get("virtualMachines", []):
                targets.append({"id": vm["id"], "resource_group": parts[4], "location": policy["location"], "ports": vm["ports"]})
        return sorted(targets, key=lambda t: t["id"].rsplit("/", 1)[1])

    def script(self, sim, label, command):
        """Run a plain Python script (naive loop, floor) against ``sim``, measured; its last line is JSON."""
        label = "%s-%s" % (self.current, label)
        env = dict(os.environ, REQUESTS_CA_BUNDLE=sim.info["ca_bundle"], SSL_CERT_FILE=sim.info["ca_bundle"])
        sim.reset_stats()
        log = self.path(label + ".log")
        m = measure([PYTHON, *command], env=env, cwd=self.work, log_path=log)
        stats = sim.stats()
        self.breakdown.setdefault("calls", {})[label] = stats["by_operation"]
        if m.rc != 0:
            raise RuntimeError("%s exited %d:\n%s" % (label, m.rc, tail(log)))
        return m, stats, json.loads(tail(log, 1))

    def info_file(self, sim):
        path = self.path("armsim-info-%s.json" % self.current)
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(sim.info, stream)
        return path

    def floor(self, sim, label, phase, plan=None):
        command = [os.path.join(BENCH, "floor.py"), "--info", self.info_file(sim), "--phase", phase]
        if plan is not None:
            plan_path = self.path("%s-%s.plan.json" % (self.current, label))
            with open(plan_path, "w", encoding="utf-8") as stream:
                json.dump(plan, stream)
            command += ["--plan", plan_path]
        return self.script(sim, label, command)

    def naive(self, sim, label, targets_path, sample=0):
        command = [os.path.join(BENCH, "naive.py"), "--info", self.info_file(sim), "--targets", targets_path]
        if sample:
            command += ["--sample", str(sample)]
        return self.script(sim, label, command)

    def naive_sample(self, vms, targets):
        """How many targets the naive loop runs on (0: all): a spread sample when a full loop would
        take too long (the azure profile, or 10,000 VMs), extrapolated linearly."""
        size = AZURE_NAIVE_SAMPLE["quick" if self.quick else "full"] if self.current == "azure" else (self.args.naive_sample if vms >= 10000 else 0)
        return size if size and size < len(targets) else 0

    # --- phases ----------------------------------------------------------------------------------
    def fleet_phases(self, vms):
        groups, locations = FLEETS[vms]
        print("\n== %s profile: fleet of %d VMs (%d resource groups, %d regions)" % (self.current, vms, groups, locations), flush=True)
        seed = self.fleet_seed(vms, groups, locations)
        facts_play = self.path("discovery.yml")
        with open(facts_play, "w", encoding="utf-8") as stream:
            yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "discover", "jitaccess.azure.nsg_jit_facts": {}}]}], stream)
        fleet_book = os.path.join(ROOT, "playbooks", "enable_jit_fleet.yml")
        fleet_vars = {"jit_fleet_mode": "enforce", "jit_fleet_report_dir": self.path("reports-%s-%d" % (self.current, vms))}
        apply_delay = None if self.current == "azure" else 0  # azure: the profile's own
        with ArmSim(seed, page_size=100, timeout=120, profile=self.current, apply_delay=apply_delay) as sim:
            self.latency(sim, vms)
            m, stats, _ = self.playbook(sim, "discovery-%d" % vms, facts_play)
            discovery = self.record("discovery", "collection", vms, None, m, stats)
            m, stats, summary = self.floor(sim, "floor-discovery-%d" % vms, "discovery")
            self.record("discovery", "floor", vms, None, m, stats)

            sim.reset()
            m, stats, tasks = self.playbook(sim, "rollout-%d" % vms, fleet_book, extra_vars=fleet_vars)
            rollout = self.record("rollout", "collection", vms, None, m, stats)
            self.show_tasks(tasks)
            self.breakdown.setdefault("rollout_tasks_s", {})["%s-%d" % (self.current, vms)] = tasks
            state = sim.state()
            policies = self.policy_map(state)
            targets = self.naive_targets(state)
            covered = sum(len(v) for v in policies.values())
            self.check(
                "rollout writes = affected policies (%s, %d VMs)" % (self.current, vms),
                rollout["writes"] == len(policies) and stats["by_operation"].get("PUT jitNetworkAccessPolicies", 0) == len(policies),
                "%d writes for %d policies covering %d VMs" % (rollout["writes"], len(policies), covered),
            )
            reads_ratio = rollout["reads"] / discovery["reads"] if discovery["reads"] else float("inf")
            self.check(
                "rollout reads within 1.5x discovery's (%s, %d VMs)" % (self.current, vms),
                reads_ratio <= 1.5,
                "%d reads vs %d (%.2fx)" % (rollout["reads"], discovery["reads"], reads_ratio),
                enforced=vms >= 10000,
            )
            if vms >= 10000:
                self.check("<= 500 policy writes at 10,000 VMs", rollout["writes"] <= 500, "%d writes" % rollout["writes"])

            m, stats, tasks = self.playbook(sim, "rerun-%d" % vms, fleet_book, extra_vars=fleet_vars)
            rerun = self.record("rerun", "collection", vms, None, m, stats)
            self.show_tasks(tasks)
            self.breakdown.setdefault("rerun_tasks_s", {})["%s-%d" % (self.current, vms)] = tasks
            self.check("second run writes nothing (%s, %d VMs)" % (self.current, vms), rerun["writes"] == 0, "%d writes" % rerun["writes"])
            if self.current == "instant" and vms >= 10000:
                limit = 1024 if vms >= 50000 else 300
                for row in (discovery, rollout):
                    peak = row["peak_rss_mb"]
                    self.check("%s peak memory < %d MB at %d VMs" % (row["phase"], limit, vms), peak < limit, "%.1f MB (largest process of the run)" % peak)

            # The floor: the same lists, then one GET + PUT per policy with the final bodies given.
            sim.reset()
            plan = [
                {"id": p["id"], "body": {"kind": "Basic", "properties": {"virtualMachines": p["properties"]["virtualMachines"]}}} for p in state["jit_policies"]
            ]
            m, stats, _ = self.floor(sim, "floor-rollout-%d" % vms, "rollout", plan)
            floor = self.record("rollout", "floor", vms, None, m, stats)
            # Enforced under azure, where the floor waits on ARM as we do. Under instant the floor is
            # localhost round trips only, below what starting ansible-playbook costs: reported.
            limit = 3.0 if vms <= 100 else 2.5
            ratio = rollout["wall_s"] / floor["wall_s"]
            self.check(
                "rollout within %gx the floor (%s, %d VMs)" % (limit, self.current, vms),
                ratio <= limit,
                "%.1fs vs %.1fs (%.2fx)" % (rollout["wall_s"], floor["wall_s"], ratio),
                enforced=self.current == "azure" and not self.quick,
            )

            # The naive loop, from the same seed, on the same VMs with the same ports.
            sim.reset()
            targets_path = self.path("targets-%d.json" % vms)
            with open(targets_path, "w", encoding="utf-8") as stream:
                json.dump(targets, stream)
            sample = self.naive_sample(vms, targets)
            scale = len(targets) / sample if sample else 1.0
            m, stats, summary = self.naive(sim, "naive-rollout-%d" % vms, targets_path, sample)
            naive = self.record("rollout", "naive", vms, None, m, stats, extrapolated_from=sample or None, scale=scale)
            if not sample:
                same = self.policy_map(sim.state()) == policies
                self.check(
                    "naive loop reaches the same JIT state (%s, %d VMs)" % (self.current, vms), same, "%d policies, %d VMs" % (len(policies), summary["vms"])
                )
            if self.current == "instant":
                m, stats, summary = self.naive(sim, "naive-rerun-%d" % vms, targets_path, sample)
                self.record("rerun", "naive", vms, None, m, stats, extrapolated_from=sample or None, scale=scale)
            else:
                ours_429 = rollout["throttled"] + rerun["throttled"] + discovery["throttled"]
                self.check("no 429 in any run of ours (azure, %d VMs)" % vms, ours_429 == 0, "%d throttled answers" % ours_429)
                factor = naive["wall_s"] / rollout["wall_s"]
                wanted = 20 if vms >= 1000 else 1
                self.check(
                    "rollout >= %dx faster than the naive loop (azure, %d VMs)" % (wanted, vms),
                    factor >= wanted,
                    "%.1fs vs %.1fs (%.1fx)%s" % (rollout["wall_s"], naive["wall_s"], factor, " naive extrapolated from %d VMs" % sample if sample else ""),
                )
        return policies

    def latency(self, sim, label):
        """Median round trip of one small ARM GET (what every call costs at least, on this armsim)."""
        _, security, _, _ = sim.sdk_clients()
        times = []
        for _ in range(15):
            start = time.monotonic()
            with contextlib.suppress(Exception):  # a 404 is the expected answer
                security.jit_network_access_policies.get("rg-000", "westeurope", "bench-latency-probe")
            times.append(time.monotonic() - start)
        times.sort()
        self.breakdown.setdefault("armsim_get_round_trip_ms", {})[str(label)] = round(times[len(times) // 2] * 1000, 1)

    def access_phases(self, host_counts):
        size = max(host_counts)
        print("\n== %s profile: access for %s hosts of a play" % (self.current, "/".join(map(str, host_counts))), flush=True)
        seed_path = self.fleet_seed(
            size, ACCESS_GROUPS, ACCESS_GROUPS, ["--windows-fraction", "0", "--no-nsg-fraction", "0", "--open-ssh-fraction", "0", "--stopped-fraction", "0"]
        )
        with open(seed_path, encoding="utf-8") as stream:
            # The fleet generator writes JSON (which is also YAML) after one comment line.
            seed = json.loads("".join(line for line in stream if not line.startswith("#")))
        seed["jit_policies"] = []
        for group in seed["resource_groups"]:
            for vm in group["virtual_machines"]:
                vm["gates"] = [{"port": 22}]
            seed["jit_policies"].append(
                {"name": "default", "resource_group": group["name"], "virtual_machines": [vm["name"] for vm in group["virtual_machines"]]}
            )
        order = sorted((vm["name"], group["name"], group["location"]) for group in seed["resource_groups"] for vm in group["virtual_machines"])
        access_seed = self.path("access-%d.json" % size)
        with open(access_seed, "w", encoding="utf-8") as stream:
            json.dump(seed, stream)
        common = {
            "jit_access_source_address_prefixes": ["127.0.0.1"],
            "jit_access_ports": [22],
            "jit_access_duration": "30m",
            "jit_access_wait_for_port": False,
        }
        ours_play = [
            {
                "hosts": "targets",
                "gather_facts": False,
                # run_once: the role's batch work once, no per-host tasks (docs/pattern.md, large batches).
                "tasks": [{"name": "open", "ansible.builtin.include_role": {"name": "jitaccess.azure.jit_access", "tasks_from": "open"}, "run_once": True}],
            }
        ]
        naive_play = [
            {
                "hosts": "targets",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Request JIT access for this host",
                        "jitaccess.azure.jit_request": {
                            "virtual_machines": [{"id": "{{ id }}"}],
                            "ports": [22],
                            "source_address_prefixes": ["127.0.0.1"],
                            "duration": "30m",
                            "wait": True,
                        },
                        "delegate_to": "localhost",
                    }
                ],
            }
        ]
        # Ansible's own fixed cost for the same play and inventory: one no-op task, run once. The part
        # of our time that no collection can remove (process start, inventory, forks).
        noop_play = [{"hosts": "targets", "gather_facts": False, "tasks": [{"name": "noop", "ansible.builtin.meta": "noop", "run_once": True}]}]
        books = {}
        for name, play in (("ours", ours_play), ("naive", naive_play), ("noop", noop_play)):
            books[name] = self.path("access-%s.yml" % name)
            with open(books[name], "w", encoding="utf-8") as stream:
                yaml.safe_dump(play, stream, sort_keys=False)
        apply_delay = None if self.current == "azure" else APPLY_DELAY  # azure: the profile's own
        with ArmSim(access_seed, apply_delay=apply_delay, timeout=120, profile=self.current) as sim:
            self.latency(sim, "access")
            delay = sim.config()["apply_delay"]
            gates = sim.info["gates"]
            sub = sim.info["subscription_id"]
            for hosts in host_counts:
                chosen = order[:hosts]
                inventory = self.path("access-%d.ini" % hosts)
                lines = ["[local]", "localhost ansible_connection=local ansible_python_interpreter=%s" % PYTHON, "[targets]"]
                for name, rg, _ in chosen:
                    vm_id = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (sub, rg, name)
                    lines.append(
                        "%s ansible_connection=local ansible_python_interpreter=%s id=%s ansible_host=127.0.0.1 ansible_port=%d"
                        % (name, PYTHON, vm_id, gates["%s:22" % name])
                    )
                with open(inventory, "w", encoding="utf-8") as stream:
                    stream.write("\n".join(lines) + "\n")
                policies = len({rg for _, rg, _ in chosen})
                ports = [gates["%s:22" % name] for name, _, _ in chosen]
                rows = {}
                for approach in ("collection", "floor", "naive"):
                    if approach == "naive" and hosts > self.naive_access_max():
                        self.extrapolate_naive_access(size, hosts)
                        continue
                    sim.reset()
                    if not all(probe(p) is False for p in ports[:5]):
                        raise RuntimeError("access: ports already open before the request")
                    start = time.monotonic()
                    if approach == "floor":
                        m, stats, _ = self.floor(sim, "floor-access-%d" % hosts, "access", access_plan(sub, chosen))
                    else:
                        book = books["ours" if approach == "collection" else "naive"]
                        m, stats, tasks = self.playbook(sim, "access-%s-%d" % (approach, hosts), book, inventory=inventory, extra_vars=common)
                        self.show_tasks(tasks)
                        self.breakdown.setdefault("access_tasks_s", {})["%s-%s-%d" % (self.current, approach, hosts)] = tasks
                    wait_all(ports, deadline=start + ACCESS_PORT_TIMEOUT + delay)
                    m.wall_s = time.monotonic() - start  # open -> every port usable
                    rows[approach] = self.record("access", approach, size, hosts, m, stats)
                ours, floor = rows["collection"], rows["floor"]
                noop, stats, _ = self.playbook(sim, "access-noop-%d" % hosts, books["noop"], inventory=inventory, extra_vars=common)
                self.breakdown.setdefault("access_ansible_noop_s", {})["%s-%d" % (self.current, hosts)] = round(noop.wall_s, 2)
                self.check(
                    "one initiate per policy (%s, %d hosts)" % (self.current, hosts),
                    ours["initiates"] == policies,
                    "%d initiates for %d policies" % (ours["initiates"], policies),
                )
                if self.current == "azure":
                    self.check("no 429 in any run of ours (azure, %d hosts)" % hosts, ours["throttled"] == 0, "%d throttled answers" % ours["throttled"])
                # ours <= apply delay + 2x the floor's own time (its wall time less the apply delay).
                # Enforced under azure, as the rollout's: under instant the floor's own time is one
                # Python start and five localhost calls, less than ansible-playbook alone costs.
                limit = delay + 2 * max(floor["wall_s"] - delay, 0.0)
                self.check(
                    "access within apply delay + 2x the floor's time (%s, %d hosts)" % (self.current, hosts),
                    ours["wall_s"] <= limit,
                    "%.1fs vs %.1fs allowed (floor %.1fs, apply delay %gs; ansible-playbook with one no-op task on these hosts: %.1fs)"
                    % (ours["wall_s"], limit, floor["wall_s"], delay, noop.wall_s),
                    enforced=self.current == "azure" and not self.quick and hosts >= 500,
                )

    def naive_access_max(self):
        """The largest play measured with per-host tasks; larger ones are extrapolated."""
        if self.current == "azure":
            return 10  # a per-host task waits out the apply delay itself: minutes per 100 hosts
        return self.args.naive_access_max

    def extrapolate_naive_access(self, size, hosts):
        """Per-host tasks cost the same per host: scale the largest measured naive play linearly."""
        measured = [
            r for r in self.results if r["phase"] == "access" and r["approach"] == "naive" and r["profile"] == self.current and not r.get("extrapolated_from")
        ]
        if not measured:
            self.notes.append("naive access for %d hosts not measured (above %d)" % (hosts, self.naive_access_max()))
            return
        base = max(measured, key=lambda r: r["hosts"])
        scale = hosts / base["hosts"]
        m = Measured(wall_s=base["wall_s"], peak_rss_mb=base["peak_rss_mb"], tree_rss_mb=0.0, cpu_s=base["cpu_s"])
        stats = {
            "reads": base["reads"],
            "writes": base["writes"],
            "by_operation": {"POST initiate": base["initiates"]},
            "by_status": {"429": base["throttled"]},
        }
        self.record("access", "naive", size, hosts, m, stats, extrapolated_from=base["hosts"], scale=scale)
        self.notes.append(
            "%s profile: naive access for %d hosts is EXTRAPOLATED linearly from the measured %d-host play (per-host tasks: each host costs the same)"
            % (self.current, hosts, base["hosts"])
        )

    # --- output ----------------------------------------------------------------------------------
    def ratios(self, against="naive"):
        """ours / ``against`` (naive or floor) for every row of ours that has one, same profile."""
        index = {(r["profile"], r["phase"], r["approach"], r["vms"], r["hosts"]): r for r in self.results}
        lines = []
        for (profile, phase, approach, vms, hosts), ours in sorted(index.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][3], kv[0][4] or 0)):
            other = index.get((profile, phase, against, vms, hosts))
            if approach != "collection" or not other:
                continue

            def ratio(key, ours=ours, other=other):
                return round(ours[key] / other[key], 4) if other.get(key) else None

            lines.append(
                {
                    "profile": profile,
                    "phase": phase,
                    "vms": vms,
                    "hosts": hosts,
                    "wall": ratio("wall_s"),
                    "cpu": ratio("cpu_s"),
                    "peak_rss": ratio("peak_rss_mb"),
                    "reads": ratio("reads"),
                    "writes": ratio("writes"),
                    "initiates": ratio("initiates"),
                    "%s_extrapolated_from" % against: other.get("extrapolated_from"),
                }
            )
        return lines

    def write(self, out_dir, suffix):
        versions = {}
        for dist in ("ansible-core", "azure-core", "azure-identity", "azure-mgmt-security", "azure-mgmt-network", "azure-mgmt-compute", "msal"):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = None
        with open(MANIFEST, encoding="utf-8") as stream:
            versions["jitaccess.azure"] = json.load(stream)["collection_info"]["version"]
        document = {
            "machine": {
                "cores": os.cpu_count(),
                "memory": "%.1f GB" % (psutil.virtual_memory().total / 2**30),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_at_start": [round(x, 2) for x in self.load_at_start],
            },
            "versions": versions,
            "results": self.results,
            "mode": "quick" if self.quick else "full",
            "settings": {
                "fleets": {str(k): {"resource_groups": v[0], "regions": v[1]} for k, v in FLEETS.items() if k in self.sizes},
                "access_apply_delay_s": {"instant": APPLY_DELAY, "azure": PROFILE_FIGURES["azure"].apply_delay},
                "profiles": {name: PROFILE_FIGURES[name].describe() for name in self.profiles},
                "ansible_forks": FORKS,
                "page_size": 100,
            },
            "ratios_ours_over_naive": self.ratios("naive"),
            "ratios_ours_over_floor": self.ratios("floor"),
            "targets": self.checks,
            "notes": self.notes,
            "breakdown": self.breakdown,
        }
        json_path = os.path.join(out_dir, "results%s.json" % suffix)
        with open(json_path, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1)
            stream.write("\n")
        png_path = os.path.join(out_dir, "results%s.png" % suffix)
        chart(self.results, png_path, "quick" if self.quick else "full")
        return json_path, png_path

    def run(self):
        self.load_at_start = os.getloadavg()
        mode = "quick" if self.quick else "full"
        self.profiles = [p for p in (self.args.profiles or ",".join(PROFILES)).split(",") if p]
        self.sizes = [100, 1000] if self.quick else [100, 1000, 10000]
        if self.args.sizes is not None:
            self.sizes = [int(s) for s in self.args.sizes.split(",") if s]
        hosts = ACCESS_HOSTS_QUICK if self.quick else ACCESS_HOSTS_FULL
        if self.args.hosts is not None:
            hosts = [int(h) for h in self.args.hosts.split(",") if h]
        for profile in self.profiles:
            self.current = profile
            # The azure profile waits out real latencies: its runs are the smaller sizes.
            sizes = [v for v in self.sizes if profile == "instant" or v in AZURE_SIZES[mode] or self.args.sizes is not None]
            for vms in sizes:
                self.fleet_phases(vms)
            writes = {(r["approach"], r["vms"]): r["writes"] for r in self.results if r["phase"] == "rollout" and r["profile"] == profile}
            if ("collection", 1000) in writes and ("naive", 1000) in writes:
                ours, naive = writes[("collection", 1000)], writes[("naive", 1000)]
                factor = naive / ours if ours else float("inf")
                self.check(
                    ">= 20x fewer rollout writes than naive at 1,000 VMs (%s)" % profile, factor >= 20, "%d vs %d writes (%.1fx fewer)" % (ours, naive, factor)
                )
            chosen = [h for h in hosts if profile == "instant" or h in AZURE_HOSTS[mode] or self.args.hosts is not None]
            if chosen:
                self.access_phases(chosen)
        self.scaling()

    def scaling(self):
        """Time and peak memory of discovery and rollout grow no faster than linearly (instant)."""
        for phase in ("discovery", "rollout"):
            rows = sorted(
                (r for r in self.results if r["phase"] == phase and r["approach"] == "collection" and r["profile"] == "instant"), key=lambda r: r["vms"]
            )
            for small, large in zip(rows, rows[1:], strict=False):
                growth = large["vms"] / small["vms"]
                for key, unit in (("wall_s", "s"), ("peak_rss_mb", "MB")):
                    factor = large[key] / small[key] if small[key] else float("inf")
                    self.check(
                        "%s %s grows no faster than the fleet (%d -> %d VMs)" % (phase, key, small["vms"], large["vms"]),
                        factor <= growth,
                        "%.1f%s -> %.1f%s (%.2fx for %gx the VMs)" % (small[key], unit, large[key], unit, factor, growth),
                        enforced=not self.quick,
                    )


def access_plan(subscription, chosen, minutes=30):
    """The floor's initiates: one per policy, every chosen VM's port 22 for 127.0.0.1."""
    import datetime

    end = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_policy = {}
    for name, rg, location in chosen:
        policy_id = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Security/locations/%s/jitNetworkAccessPolicies/default" % (
            subscription,
            rg,
            location,
        )
        vm_id = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (subscription, rg, name)
        by_policy.setdefault(policy_id, []).append({"id": vm_id, "ports": [{"number": 22, "allowedSourceAddressPrefix": "127.0.0.1", "endTimeUtc": end}]})
    return [{"id": policy_id, "body": {"virtualMachines": vms}} for policy_id, vms in by_policy.items()]


def probe(port, timeout=2.0):
    """True when the gate admits us (it sends a banner), False when it closes the connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(64).startswith(b"armsim")
    except OSError:
        return False


def wait_all(ports, deadline):
    """Until every port admits a connection (probing in parallel); raises after the deadline."""
    pending = list(ports)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        while pending:
            pending = [p for p, ok in zip(pending, pool.map(probe, pending), strict=True) if not ok]
            if pending and time.monotonic() > deadline:
                raise RuntimeError("access: %d ports still closed after the deadline" % len(pending))
            if pending:
                time.sleep(0.1)


def chart(results, path, mode):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    styles = {"collection": ("tab:blue", "o"), "naive": ("tab:red", "s"), "floor": ("tab:green", "^")}
    lines = {"instant": "-", "azure": "--"}

    def plot(ax, rows, x, y, *, color, marker, line, label):
        rows = sorted(rows, key=lambda r: r[x])
        if not rows:
            return
        ys = [max(r[y], 0.5 if y == "writes" else 0.01) for r in rows]
        ax.plot([r[x] for r in rows], ys, line, color=color, marker=marker, label=label)
        for r, value in zip(rows, ys, strict=True):
            if r.get("extrapolated_from"):
                ax.annotate("extrapolated\nfrom %d" % r["extrapolated_from"], (r[x], value), fontsize=7, textcoords="offset points", xytext=(-55, 6))

    for approach, (color, marker) in styles.items():
        for profile, line in lines.items():
            rows = [r for r in results if r["approach"] == approach and r.get("profile", "instant") == profile]
            label = "%s, %s" % (approach, profile)
            if profile == "instant":
                plot(axes[0], [r for r in rows if r["phase"] == "rollout"], "vms", "writes", color=color, marker=marker, line=line, label=label)
            plot(axes[1], [r for r in rows if r["phase"] == "rollout"], "vms", "wall_s", color=color, marker=marker, line=line, label=label)
            plot(axes[2], [r for r in rows if r["phase"] == "access"], "hosts", "wall_s", color=color, marker=marker, line=line, label=label)
    titles = (
        ("ARM writes per rollout (0 plotted as 0.5)", "fleet size (VMs)"),
        ("Rollout wall time, s (azure: realistic latency + throttling)", "fleet size (VMs)"),
        ("Open access: until every port is usable, s", "hosts in the play"),
    )
    for ax, (title, xlabel) in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("jitaccess.azure vs the naive per-VM approach and the floor, on armsim (%s run)" % mode)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(paths):
    """One results document from ``paths``: the first run, plus the rows, ratios, targets, notes and
    breakdown of each later run (a run of other sizes or profiles). Ratios and targets stay those of
    the run that measured them; a row another run already has is kept from the earlier run. Each
    later run's machine, versions and load are kept under ``merged_runs``."""
    documents = []
    for path in paths:
        with open(path, encoding="utf-8") as stream:
            documents.append(json.load(stream))
    base = documents[0]

    def key(row):
        return (row["profile"], row["phase"], row["approach"], row["vms"], row["hosts"])

    for path, extra in zip(paths[1:], documents[1:], strict=True):
        present = {key(row) for row in base["results"]}
        base["results"] += [row for row in extra["results"] if key(row) not in present]
        for name in ("ratios_ours_over_naive", "ratios_ours_over_floor", "targets", "notes"):
            base[name] = base.get(name, []) + extra.get(name, [])
        for name, values in extra.get("breakdown", {}).items():
            if isinstance(values, dict):
                base["breakdown"].setdefault(name, {}).update({k: v for k, v in values.items() if k not in base["breakdown"].get(name, {})})
        base["settings"]["fleets"].update(extra["settings"].get("fleets", {}))
        base.setdefault("merged_runs", []).append(
            {"from": os.path.basename(path), "machine": extra["machine"], "versions": extra["versions"], "mode": extra.get("mode")}
        )
        base["notes"].append("rows of %s come from a separate run (merged_runs): ratios and targets are each run's own" % os.path.basename(path))
    return base


def main(argv=None):
    parser = argparse.ArgumentParser(description="jitaccess.azure benchmark (see docs/bench.md)")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 VMs, access for 10/100 hosts (runs in make test)")
    parser.add_argument("--out", help="output directory (default: bench/ for a full run, .build/bench/ for --quick)")
    parser.add_argument("--sizes", help="comma-separated fleet sizes (default 100,1000[,10000]; 50000 on request)")
    parser.add_argument("--profiles", help="comma-separated armsim profiles (default instant,azure)")
    parser.add_argument("--hosts", help="comma-separated access host counts (default 10,100[,500]); empty: skip access")
    parser.add_argument("--naive-sample", type=int, default=1000, help="at 10,000 VMs run the naive loop on this many VMs and extrapolate (0: all)")
    parser.add_argument(
        "--naive-access-max",
        type=int,
        help="largest play measured with per-host jit_request tasks, larger ones are extrapolated (default 100; 10 with --quick)",
    )
    parser.add_argument("--table", metavar="RESULTS_JSON", help="print the results of an earlier run as Markdown tables and exit")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, seeds, per-task timings)")
    parser.add_argument(
        "--merge", nargs="+", metavar="RESULTS_JSON", help="merge these results (the first, then later runs' other rows) into --out's results.json and chart"
    )
    args = parser.parse_args(argv)
    if args.merge:
        document = merge(args.merge)
        out_dir = args.out or BENCH
        os.makedirs(out_dir, exist_ok=True)
        json_path = os.path.join(out_dir, "results.json")
        with open(json_path, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1)
            stream.write("\n")
        chart(document["results"], os.path.join(out_dir, "results.png"), document["mode"])
        print("merged %d runs into %s" % (len(args.merge), json_path))
        return 0
    if args.table:
        with open(args.table, encoding="utf-8") as stream:
            print(markdown(json.load(stream)))
        return 0
    if args.naive_access_max is None:
        args.naive_access_max = 10 if args.quick else 100
    if not os.path.exists(MANIFEST):
        print("bench: the collection is not installed in %s; run `make install` first" % INSTALLED, file=sys.stderr)
        return 2
    out_dir = args.out or (os.path.join(ROOT, ".build", "bench") if args.quick else BENCH)
    os.makedirs(out_dir, exist_ok=True)
    bench = Bench(args)
    started = time.monotonic()
    print("jitaccess.azure bench (%s) -- work directory %s" % ("quick" if args.quick else "full", bench.work), flush=True)
    failure = None
    try:
        bench.run()
    except Exception as exc:  # noqa: BLE001 - report, write what we have, fail
        failure = exc
        bench.check("bench completed", False, str(exc))
    json_path, png_path = bench.write(out_dir, "-quick" if args.quick else "")
    for against in ("naive", "floor"):
        print("\n== ratios (ours / %s, same run and profile)" % against)
        for r in bench.ratios(against):
            what = "%s %s %s VMs" % (r["profile"], r["phase"], r["vms"]) if r["phase"] != "access" else "%s access %s hosts" % (r["profile"], r["hosts"])
            unit = "hosts" if r["phase"] == "access" else "VMs"
            source = r["%s_extrapolated_from" % against]
            extra = "  (%s extrapolated from %d %s)" % (against, source, unit) if source else ""
            print(
                "  %-30s wall %s  CPU %s  peak RSS %s  reads %s  writes %s  initiates %s%s"
                % (what, fmt(r["wall"]), fmt(r["cpu"]), fmt(r["peak_rss"]), fmt(r["reads"]), fmt(r["writes"]), fmt(r["initiates"]), extra)
            )
    for note in bench.notes:
        print("  note: " + note)
    missed = [c for c in bench.checks if not c["ok"] and c.get("enforced", True)]
    print("\nwrote %s and %s in %.0fs" % (json_path, png_path, time.monotonic() - started))
    if args.keep or failure:
        print("work directory kept: %s" % bench.work)
    else:
        shutil.rmtree(bench.work, ignore_errors=True)
    if missed:
        print("bench: %d target(s) MISSED:" % len(missed), file=sys.stderr)
        for c in missed:
            print("  - %s: %s" % (c["target"], c["detail"]), file=sys.stderr)
        return 1
    reported = [c for c in bench.checks if not c["ok"]]
    print("bench: every enforced target met (%d checked%s)" % (len(bench.checks), ", %d reported only and missed" % len(reported) if reported else ""))
    return 0


def markdown(document):
    """The results as Markdown tables (for docs/bench.md): ``bench/run.py --table results.json``."""
    rows = document["results"]
    index = {(r.get("profile", "instant"), r["phase"], r["approach"], r["vms"], r["hosts"]): r for r in rows}

    def versus(r, against, keys):
        other = index.get((r.get("profile", "instant"), r["phase"], against, r["vms"], r["hosts"]))
        if r["approach"] != "collection" or not other:
            return ""
        return ", ".join(fmt(r[k] / other[k]) if other.get(k) else "-" for k in keys)

    def approach(r, unit):
        return r["approach"] + (" (extrapolated from %d %s)" % (r["extrapolated_from"], unit) if r.get("extrapolated_from") else "")

    out = [
        "| profile | phase | VMs | approach | wall s | CPU s | reads | writes | 429s | peak RSS MB | ours/naive: wall, writes | ours/floor: wall, CPU, RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["phase"] == "access":
            continue
        out.append(
            "| %s | %s | %s | %s | %.1f | %s | %d | %d | %s | %.0f | %s | %s |"
            % (
                r.get("profile", "instant"),
                r["phase"],
                "{:,}".format(r["vms"]),
                approach(r, "VMs"),
                r["wall_s"],
                fmt(r.get("cpu_s")),
                r["reads"],
                r["writes"],
                r.get("throttled", "-"),
                r["peak_rss_mb"],
                versus(r, "naive", ("wall_s", "writes")),
                versus(r, "floor", ("wall_s", "cpu_s", "peak_rss_mb")),
            )
        )
    out += [
        "",
        "| profile | hosts | approach | open -> every port usable, s | initiates | reads | writes | 429s | ours/naive: time, initiates | ours/floor: time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["phase"] != "access":
            continue
        out.append(
            "| %s | %d | %s | %.1f | %d | %d | %d | %s | %s | %s |"
            % (
                r.get("profile", "instant"),
                r["hosts"],
                approach(r, "hosts"),
                r["wall_s"],
                r["initiates"],
                r["reads"],
                r["writes"],
                r.get("throttled", "-"),
                versus(r, "naive", ("wall_s", "initiates")),
                versus(r, "floor", ("wall_s",)),
            )
        )
    out += ["", "| target | met | measured |", "|---|---|---|"]
    out += [
        "| %s | %s | %s |" % (c["target"], ("yes" if c["ok"] else "**no**") + ("" if c.get("enforced", True) else " (reported only)"), c["detail"])
        for c in document.get("targets", [])
    ]
    return "\n".join(out)


def fmt(value):
    return "-" if value is None else ("%.3g" % value)


if __name__ == "__main__":
    sys.exit(main())
