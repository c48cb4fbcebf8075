"""Every YAML play and task list in README.md and docs/*.md, run as a user would paste it, through
real ansible-playbook against armsim.

The blocks come from test_docs_examples (the same extraction that lints them). One ansible-playbook
run per document, its blocks in order, against a fresh armsim holding seeds/docs.yaml plus the
sandbox's demo resource group (demo/demo_hosts.yaml). What a user would supply is supplied here:

- the hosts: the group `web` (web-1, web-2) and `jit_targets` (demo-web-1, demo-web-2, the
  sandbox's inventory), local connections whose port 22 is an armsim gate open only while JIT
  admits 127.0.0.1;
- USER_VARS (inventory variables), and a document's blocks of the collection's variables (a
  mapping of jit_* or configure_with_jit_* names, such as AWX extra variables) as extra variables
  of its run;
- the user's own code the examples name: the role `my_configuration` and AWX's project files;
- addresses: the documentation's egress address (203.0.113.7, RFC 5737) is this machine's,
  127.0.0.1, and `<sub>` is armsim's subscription.

The jit_guard callback is enabled for a document whose examples take a lease, as its text asks.
Between two playbooks of a document, armsim's clock moves on three minutes (minutes_pass).
A task list runs in a play on localhost, or on the group `web` when it includes the jit_access
role (that role acts for the hosts of the play). A block that cannot run offline carries
`<!-- example: not run - <reason> -->` right before its fence; few may.

Checked: rc 0, no failed or unreachable task, no skipped task of the example itself, and armsim's
state afterwards: the JIT allow rules are exactly those the run's requests opened and did not
close, every policy a jit_policy task reported is in armsim as reported, and every VM an example
puts under JIT literally is there with the ports it names.
"""

import json
import os
import re
import sys

import pytest
import yaml
from harness import ROOT, run_playbook
from roles_support import write_inventory
from test_docs_examples import DOCS, Block, doc_blocks, kind_of

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def docs_seed():
    with open(os.path.join(SEEDS, "docs.yaml"), encoding="utf-8") as stream:
        seed = yaml.safe_load(stream)
    with open(os.path.join(ROOT, "demo", "demo_hosts.yaml"), encoding="utf-8") as stream:
        seed["resource_groups"].append(yaml.safe_load(stream))
    return seed


ARMSIM_SEED = docs_seed()
HOSTS = {"web": [("web-1", "rg-web"), ("web-2", "rg-web")], "jit_targets": [("demo-web-1", "rg-demo"), ("demo-web-2", "rg-demo")]}
USER_VARS = {
    "vm_id": "/subscriptions/{sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1",
    "work_dir": "{tmp}",
    "tower_job_id": "42",  # set by AWX in every job
    # jit_fleet's default is beside the playbook: for a playbook of the collection, inside it
    "jit_fleet_report_dir": "{tmp}/reports",
}
# the documentation's addresses stand for the user's; the connection to a gate comes from 127.0.0.1
ADDRESSES = {"203.0.113.7": "127.0.0.1", "203.0.113.0/24": "127.0.0.0/24"}
AWX_PROJECT = "/runner/project/"  # where AWX checks the project out
VARIABLE_PREFIXES = ("jit_", "configure_with_jit_")
# What a document's text assumes happened before its examples, and the JIT access it must leave
# open afterwards (None: what its requests opened and did not close).
CANCELLED_JOB = {
    "name": "A job that was cancelled (SIGKILL) left access open",
    "hosts": "localhost",
    "gather_facts": False,
    "tasks": [
        {
            "name": "Open SSH on db-1 from the execution nodes' egress address",
            "jitaccess.azure.jit_request": {
                "virtual_machines": [{"name": "db-1", "resource_group": "rg-db"}],
                "ports": [22],
                "source_address_prefixes": ["127.0.0.1"],
                "duration": "20m",
            },
        }
    ],
}
DOC_SETUP = {"docs/awx.md": ([CANCELLED_JOB], set())}  # the cleanup playbook closes what the job left
MAX_NOT_RUN = 3
FIX_HINT = (
    "An example must run against armsim as written. Name VMs of the docs fleet (rg-web: web-1, web-2, "
    "win-1; rg-app: app-1; rg-db: db-1; rg-demo: demo-web-1, demo-web-2, demo-win-1, demo-bastion, "
    "demo-legacy; tests/integration/seeds/docs.yaml and demo/demo_hosts.yaml), the host groups web or "
    "jit_targets, and the variables of USER_VARS in %s; or, if it truly cannot run offline, put "
    "`<!-- example: not run - <reason> -->` on the line before its fence." % os.path.basename(__file__)
)
# a stand-in for the user's configuration: it succeeds only while the host's port answers
STAND_IN_TASKS = [
    {
        "name": "Stand-in configuration (the port answers)",
        "ansible.builtin.wait_for": {"host": "{{ ansible_host }}", "port": "{{ ansible_port }}", "search_regex": "^armsim", "timeout": 30},
        "delegate_to": "localhost",
    }
]


def parsed(block):
    documents = [doc for doc in yaml.safe_load_all(block.body) if doc is not None]
    return documents[0] if len(documents) == 1 else documents


def runnable(block):
    return kind_of(parsed(block)) in ("play", "tasks") and not (block.marker or "").startswith("not run")


def docs_with_examples():
    return [doc for doc in DOCS if any(runnable(block) for block in doc_blocks(doc))]


def substitute(text, sim, tmp):
    for address, ours in ADDRESSES.items():
        text = re.sub(r"(?<![\d.])%s(?![\d/])" % re.escape(address), ours, text)
    return text.replace("<sub>", sim.info["subscription_id"]).replace(AWX_PROJECT, str(tmp / "project") + "/")


def leaf_tasks(tasks):
    for task in tasks or []:
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from leaf_tasks(task.get(part))
        else:
            yield task


def example_tasks(plays):
    for play in plays:
        for part in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            yield from leaf_tasks(play.get(part))


def as_plays(block, data):
    if kind_of(data) == "play":
        return data
    hosts = "web" if "jitaccess.azure.jit_access" in block.body else "localhost"
    return [{"name": "Example %s" % block.name, "hosts": hosts, "gather_facts": False, "tasks": data}]


def minutes_pass(sim):
    """A play for the time between two playbooks of a document: armsim's clock moves on by more
    than the two minutes Defender may take to apply a request (a close waits that long for rules
    that may still come), as between a job and the cleanup job run after it."""
    advance = {
        "url": sim.info["admin_url"].rstrip("/") + "/clock/advance",
        "method": "POST",
        "body_format": "json",
        "body": {"seconds": 180},
        "ca_path": sim.info["ca_bundle"],
    }
    return {"name": "Minutes pass", "hosts": "localhost", "gather_facts": False, "tasks": [{"name": "Advance armsim's clock", "ansible.builtin.uri": advance}]}


def user_project(tmp):
    """The user's own code that examples name: a role and AWX's project tasks."""
    role = tmp / "roles" / "my_configuration" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(yaml.safe_dump(STAND_IN_TASKS, sort_keys=False))
    tasks = tmp / "project" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "configure.yml").write_text(yaml.safe_dump(STAND_IN_TASKS, sort_keys=False))


def inventory(sim, tmp):
    text = ""
    for group, hosts in HOSTS.items():
        write_inventory(sim, tmp / "group.ini", hosts, group=group)
        text += (tmp / "group.ini").read_text()
    variables = {key: value.format(sub=sim.info["subscription_id"], tmp=tmp) for key, value in USER_VARS.items()}
    text += "[controller]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable
    text += "[all:vars]\n" + "".join("%s=%s\n" % item for item in variables.items())
    (tmp / "inventory.ini").write_text(text)
    return str(tmp / "inventory.ini")


def vm_of_address(state):
    return {
        config["properties"]["privateIPAddress"]: nic["properties"]["virtualMachine"]["id"].lower()
        for nic in state["network_interfaces"]
        if nic["properties"].get("virtualMachine")
        for config in nic["properties"]["ipConfigurations"]
    }


def allow_rules(state):
    """{(vm id, port, source)} that armsim's JIT allow rules admit."""
    vms = vm_of_address(state)
    found = set()
    for nsg in state["network_security_groups"]:
        for rule in nsg["properties"].get("securityRules", []):
            props = rule["properties"]
            if props["access"] != "Allow" or not rule["name"].lower().startswith("microsoftdefenderforcloud-jitrule"):
                continue
            for port in props.get("destinationPortRanges") or [props.get("destinationPortRange")]:
                for source in props.get("sourceAddressPrefixes") or [props.get("sourceAddressPrefix")]:
                    found.add((vms[props["destinationAddressPrefix"]], int(port), source))
    return found


def left_open(results):
    """{(vm id, port, source)} the run's requests opened and did not close, in order."""
    ledger = set()
    for record in results:
        if record["action"].endswith("jit_request") and record["status"] == "ok":
            for entry in record["result"].get("opened", []):
                ledger.add((entry["vm_id"].lower(), int(entry["port"]), entry["source"]))
            for entry in record["result"].get("closed", []):
                ledger.discard((entry["vm_id"].lower(), int(entry["port"]), entry["source"]))
    return ledger


def policies_in(state):
    return {policy["id"].lower(): {vm["id"].lower(): vm["ports"] for vm in policy["properties"]["virtualMachines"]} for policy in state["jit_policies"]}


def named_vms(task, sim):
    """(vm id, port numbers or None) of each VM a jit_policy task names literally."""
    args = task["jitaccess.azure.jit_policy"]
    default_ports = args.get("ports")
    for entry in args.get("virtual_machines") if isinstance(args.get("virtual_machines"), list) else []:
        if "{{" in json.dumps(entry) or not (entry.get("id") or entry.get("resource_group")):
            continue
        vm = entry.get("id") or "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (
            sim.info["subscription_id"],
            entry["resource_group"],
            entry["name"],
        )
        ports = entry.get("ports", default_ports)
        yield vm.lower(), sorted(port["number"] if isinstance(port, dict) else port for port in ports) if isinstance(ports, list) else None


def test_not_run_examples_are_marked_with_a_reason_and_few():
    marked = [block for doc in DOCS for block in doc_blocks(doc) if block.marker is not None]
    for block in marked:
        where = "%s:%d" % (block.doc, block.line)
        assert re.fullmatch(r"not run - \S.*", block.marker, re.S), "%s: write `<!-- example: not run - <reason> -->`, not %r" % (where, block.marker)
    places = ", ".join("%s:%d" % (block.doc, block.line) for block in marked)
    assert len(marked) <= MAX_NOT_RUN, "too many examples are not run (%s): make them run. %s" % (places, FIX_HINT)
    assert sum(runnable(block) for doc in DOCS for block in doc_blocks(doc)) >= 15  # the docs' plays and task lists


@pytest.mark.parametrize("doc", docs_with_examples())
def test_doc_examples_run_against_armsim(doc, armsim, tmp_path):
    blocks: list[Block] = [block for block in doc_blocks(doc) if runnable(block)]
    prelude, expected_open = DOC_SETUP.get(doc, ([], None))
    plays, extra_vars = list(prelude), {}
    for block in doc_blocks(doc):
        data = yaml.safe_load(substitute(block.body, armsim, tmp_path))
        if isinstance(data, dict) and all(str(key).startswith(VARIABLE_PREFIXES) for key in data):
            extra_vars.update(data)
        elif block in blocks:
            if plays and kind_of(data) == "play":
                plays.append(minutes_pass(armsim))
            plays += as_plays(block, data)
    user_project(tmp_path)
    env = {"ANSIBLE_ROLES_PATH": str(tmp_path / "roles"), "HOME": str(tmp_path)}
    # a lease needs jit_guard (jit_request refuses one without it); at the end it closes what is open
    guard = any(re.search(r"^\s*(jit_access_)?lease:", block.body, re.M) for block in blocks)
    if guard:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "record_results,jitaccess.azure.jit_guard"
    run = run_playbook(armsim, plays, extra_vars=extra_vars, env=env, inventory=inventory(armsim, tmp_path), timeout=900)
    output = run.stdout[-6000:] + run.stderr[-3000:]
    where = "examples of %s (blocks at lines %s)" % (doc, ", ".join(str(b.line) for b in blocks))
    bad = ["%s: %s on %s: %s" % (r["status"], r["task"], r["host"], r["result"].get("msg")) for r in run.results if r["status"] in ("failed", "unreachable")]
    assert run.rc == 0 and not bad, "the %s failed:\n%s\n\n%s\n\n%s" % (where, "\n".join(bad), FIX_HINT, output)
    own = {task.get("name") for task in example_tasks(plays)}
    skipped = ["%s on %s" % (r["task"], r["host"]) for r in run.results if r["status"] == "skipped" and r["task"] in own]
    assert not skipped, "tasks of the %s were skipped: %s\n%s" % (where, skipped, output)
    assert run.results and own <= {r["task"] for r in run.results} | {None}, output  # every task of the examples ran

    state = armsim.state()
    # access: exactly what the examples opened and did not close (one that closes leaves nothing)
    opened = run.results[0]["result"]["opened"] if prelude else []
    assert not prelude or len(opened) == 1, run.results[0]  # the setup really left access open
    if expected_open is None:
        expected_open = set() if guard else left_open(run.results)
    assert allow_rules(state) == expected_open, "JIT allow rules in armsim after the %s" % where
    # policies: as the last jit_policy result for each reported them
    policies = policies_in(state)
    reported = {}
    for record in run.results:
        if record["action"].endswith("jit_policy") and record["status"] == "ok":
            reported.update({policy["id"].lower(): policy for policy in record["result"].get("policies", [])})
    for policy_id, policy in reported.items():
        assert len(policies.get(policy_id, {})) == policy["virtual_machine_count"], (policy_id, policy, policies.get(policy_id))
    # every VM an example puts under JIT literally is there, with the ports it names
    for task in example_tasks(plays):
        if isinstance(task.get("jitaccess.azure.jit_policy"), dict) and task["jitaccess.azure.jit_policy"].get("state", "present") == "present":
            for vm, ports in named_vms(task, armsim):
                entries = [entry for entries in policies.values() for vm_id, entry in entries.items() if vm_id == vm]
                assert entries, "%s is in no JIT policy after %r" % (vm, task["name"])
                if ports is not None:
                    assert sorted(port["number"] for port in entries[0]) == ports, (vm, entries[0], task["name"])
