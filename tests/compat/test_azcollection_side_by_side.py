"""azure.azcollection 3.12.0 and jitaccess.azure in one play, one environment, one set of credentials.

One real ``ansible-playbook`` run (the compat venv's, with the ``ansible`` package's bundled
azure.azcollection and the built jitaccess.azure) against armsim: the play declares the
authentication settings once (a YAML anchor) and hands them to both collections through
``module_defaults`` (``group/azure.azcollection.all`` - azure.azcollection's only action group - and
``group/jitaccess.azure.azure``). No task carries an auth option, and no ``AZURE_*`` variable is in
the environment; only ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` are, so TLS stays verified against
armsim's CA. The play lists resource groups with ``azure_rm_resourcegroup_info``, reports with
``nsg_jit_facts`` and puts web-1 under JIT with ``jit_policy``; the tests check each outcome in
armsim (seed: seeds/side_by_side.yaml).

azure.azcollection 3.12.0 cannot resolve a metadata URL as ``cloud_environment`` on its own (it calls
``azure.cli.core.cloud.get_cloud_from_metadata_endpoint``, which azure-cli-core does not have:
ansible-collections/azure#2157). The run therefore puts ``azcollection_cloud/`` on ``PYTHONPATH``,
whose ``sitecustomize`` supplies that one function (see its docstring); the last test proves the bug
without it and that jitaccess.azure does not need it.
"""

import os
import re
import types
from importlib import metadata

import pytest
import yaml
from harness import collections_path, run_playbook

ARMSIM_SEED = "side_by_side.yaml"

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "azcollection_cloud")
SUB = "00000000-0000-0000-0000-000000000001"
RG_API = "2022-09-01"  # azure.azcollection's rm_client pins this api-version for ResourceManagementClient
TLS_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PUT = "PUT jitNetworkAccessPolicies"
DENY_NAME = re.compile(r"^MicrosoftDefenderForCloud-JITRule_-?\d+_[0-9A-F]{32}$")

PLAYBOOK = """\
- name: azure.azcollection and jitaccess.azure side by side
  hosts: localhost
  gather_facts: false
  vars:
    # The only place the credentials and the cloud are named.
    azure_auth: &azure_auth
      client_id: {client_id}
      secret: {secret}
      tenant: {tenant}
      subscription_id: {subscription_id}
      cloud_environment: {cloud}
      disable_instance_discovery: true
  module_defaults:
    group/azure.azcollection.all: *azure_auth
    group/jitaccess.azure.azure: *azure_auth
  tasks:
    - name: environment
      ansible.builtin.debug:
        msg:
          azure: "{{{{ dict(names | zip(query('ansible.builtin.env', *names, default='<unset>'))) }}}}"
          ca_bundle: "{{{{ lookup('ansible.builtin.env', 'REQUESTS_CA_BUNDLE') }}}}"
      vars:
        names: [AZURE_CLIENT_ID, AZURE_SECRET, AZURE_CLIENT_SECRET, AZURE_TENANT, AZURE_SUBSCRIPTION_ID,
                AZURE_CLOUD_ENVIRONMENT, AZURE_DISABLE_INSTANCE_DISCOVERY, AZURE_PROFILE, ANSIBLE_AZURE_AUTH_SOURCE]
{tasks}
"""

TASKS = """\
    - name: resource groups
      azure.azcollection.azure_rm_resourcegroup_info: {}
    - name: resource group rg-web
      azure.azcollection.azure_rm_resourcegroup_info:
        name: rg-web
    - name: jit facts
      jitaccess.azure.nsg_jit_facts: {}
    - name: jit policy
      jitaccess.azure.jit_policy:
        virtual_machines:
          - {name: web-1, resource_group: rg-web}
"""


class TlsOnly:
    """armsim as harness.run_playbook sees it, minus the credentials: ``env()`` keeps only the CA."""

    def __init__(self, sim):
        self.sim = sim

    def env(self):
        return {key: value for key, value in self.sim.env().items() if key in TLS_VARIABLES}


def playbook(sim, tasks):
    info = sim.info
    return PLAYBOOK.format(
        client_id=info["client_id"],
        secret=info["client_secret"],
        tenant=info["tenant_id"],
        subscription_id=info["subscription_id"],
        cloud=info["metadata_url"],
        tasks=tasks.rstrip("\n"),
    )


def run_without_azure_environment(sim, tasks, *, shim):
    """One ansible-playbook run with no AZURE_* (nor ANSIBLE_AZURE_*) variable in its environment."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [SHIM if shim else "", os.environ.get("PYTHONPATH", "")]))}
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(("AZURE_", "ANSIBLE_AZURE_")):
                patch.delenv(key)
        return run_playbook(TlsOnly(sim), playbook(sim, tasks), env=env, args=("-vvv",))


def deny_rules(state, nsg, vm):
    (group,) = [n for n in state["network_security_groups"] if n["name"] == nsg]
    description = f"MDC JIT Network Access rule for policy 'default' of VM '{vm}'."
    return [r for r in group["properties"]["securityRules"] if r["properties"]["access"] == "Deny" and r["properties"].get("description") == description]


@pytest.fixture(scope="module")
def side_by_side(armsim_server):
    """The one playbook run, with armsim's state and counters before and after it."""
    sim = armsim_server
    sim.reset()
    seed_state = sim.state()
    run = run_without_azure_environment(sim, TASKS, shim=True)
    assert run.rc == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return types.SimpleNamespace(sim=sim, run=run, seed=seed_state, state=sim.state(), stats=sim.stats(), requests=sim.requests())


def test_play_declares_auth_once_and_tasks_carry_none(side_by_side):
    text = playbook(side_by_side.sim, TASKS)
    assert text.count(side_by_side.sim.info["client_secret"]) == 1 and text.count("&azure_auth") == 1
    (play,) = yaml.safe_load(text)
    auth = play["vars"]["azure_auth"]
    assert play["module_defaults"] == {"group/azure.azcollection.all": auth, "group/jitaccess.azure.azure": auth}
    auth_options = set(auth) | {"auth_source", "profile", "ad_user", "password", "x509_certificate_path", "cert_validation_mode"}
    for task in play["tasks"]:
        (module,) = [key for key in task if "." in key]
        assert not auth_options & set(task[module] or {}), task


def test_no_azure_variable_reached_the_run_and_tls_stayed_verified(side_by_side):
    environment = side_by_side.run.result("environment")["msg"]
    assert set(environment["azure"].values()) == {"<unset>"}, environment
    assert environment["ca_bundle"] == side_by_side.sim.info["ca_bundle"]  # armsim's CA, verified by both SDK stacks
    # Every module got the same settings through module_defaults (the secret masked by both collections).
    for task in ("resource groups", "resource group rg-web", "jit facts", "jit policy"):
        args = side_by_side.run.result(task)["invocation"]["module_args"]
        assert args["cloud_environment"] == side_by_side.sim.info["metadata_url"], task
        assert args["subscription_id"] == SUB and args["disable_instance_discovery"] is True, task
        assert args.get("cert_validation_mode") in (None, "validate"), task
    assert side_by_side.sim.info["client_secret"] not in side_by_side.run.stdout + side_by_side.run.stderr
    # Both collections logged in at armsim's Entra ID (the authority its metadata names).
    assert side_by_side.stats["token_requests"] >= 2


def test_azcollection_returns_the_seed_resource_groups(side_by_side):
    listed = side_by_side.run.result("resource groups")
    assert listed["changed"] is False and "failed" not in listed

    def key(rg):
        return (rg["id"], rg["name"], rg["location"], rg.get("tags") or {})

    assert sorted(map(key, listed["resourcegroups"])) == sorted(map(key, side_by_side.seed["resource_groups"]))
    with open(os.path.join(HERE, "seeds", ARMSIM_SEED), encoding="utf-8") as stream:
        seed = yaml.safe_load(stream)
    # ... and the seed file itself says the same (names, regions, tags), independently of armsim's rendering
    from_file = {g["name"]: (g["location"], g.get("tags") or {}) for g in seed["resource_groups"]}
    assert {rg["name"]: (rg["location"], rg.get("tags") or {}) for rg in listed["resourcegroups"]} == from_file
    assert from_file["rg-web"][1] == {"team": "web", "env": "prod"} and len(from_file) == 3
    (one,) = side_by_side.run.result("resource group rg-web")["resourcegroups"]
    assert one["id"] == f"/subscriptions/{SUB}/resourceGroups/rg-web" and one["location"] == "westeurope"


def test_azcollection_ran_its_own_module_and_sdk(side_by_side):
    run = side_by_side.run
    assert [r["action"] for r in run.results if r["task"].startswith("resource group")] == ["azure.azcollection.azure_rm_resourcegroup_info"] * 2
    # ansible-playbook (-vvv) loaded each module from where it should: the `ansible` package's bundled
    # azure.azcollection, and the jitaccess.azure that `make install` built.
    bundled = metadata.distribution("ansible").locate_file("ansible_collections/azure/azcollection/plugins/modules")
    ours = os.path.join(collections_path(), "ansible_collections", "jitaccess", "azure", "plugins", "modules")
    used = [line.split("Using module file ", 1)[1] for line in run.stdout.splitlines() if "Using module file " in line]
    assert used == [
        os.path.join(bundled, "azure_rm_resourcegroup_info.py"),
        os.path.join(bundled, "azure_rm_resourcegroup_info.py"),
        os.path.join(ours, "nsg_jit_facts.py"),
        os.path.join(ours, "jit_policy.py"),
    ]
    # Its answer went through azure-mgmt-resource's ResourceGroup model and msrest's as_dict(): snake_case
    # attribute names (armsim sends provisioningState), and the model's exact set of keys.
    for rg in run.result("resource groups")["resourcegroups"]:
        assert rg["properties"] == {"provisioning_state": "Succeeded"}
        assert rg["type"] == "Microsoft.Resources/resourceGroups"
        assert set(rg) <= {"id", "name", "type", "properties", "location", "managed_by", "tags"}
    # The ARM calls are its SDK's: resource group list and get at the api-version azure.azcollection pins.
    rg_calls = [(r["method"], r["path"], r["query"]) for r in side_by_side.requests if r["operation"] == "GET resourcegroups"]
    assert rg_calls == [
        ("GET", f"/subscriptions/{SUB}/resourcegroups", f"api-version={RG_API}"),
        ("GET", f"/subscriptions/{SUB}/resourcegroups/rg-web", f"api-version={RG_API}"),
    ]
    assert side_by_side.stats["by_operation"]["GET resourcegroups"] == 2


def test_nsg_jit_facts_saw_the_seed_vms(side_by_side):
    result = side_by_side.run.result("jit facts")
    assert result["changed"] is False
    facts = result["ansible_facts"]["azure_jit"]
    assert sorted(vm["name"] for vm in facts["virtual_machines"]) == sorted(vm["name"] for vm in side_by_side.seed["virtual_machines"])
    assert sorted(vm["name"] for vm in side_by_side.seed["virtual_machines"]) == ["db-1", "web-1", "web-2", "win-1"]
    assert {vm["name"]: vm["jit_status"] for vm in facts["virtual_machines"]} == dict.fromkeys(["db-1", "web-1", "web-2", "win-1"], "not_configured")


def test_jit_policy_put_web_1_under_jit_with_one_write(side_by_side):
    result = side_by_side.run.result("jit policy")
    assert result["changed"] is True
    assert side_by_side.stats["by_operation"].get(PUT) == 1 and side_by_side.stats["writes"] == 1
    assert side_by_side.seed["jit_policies"] == []
    (policy,) = side_by_side.state["jit_policies"]
    assert policy["id"] == f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    (entry,) = policy["properties"]["virtualMachines"]
    assert entry["id"].lower() == f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1".lower()
    assert [p["number"] for p in entry["ports"]] == [22]
    # One deny rule per NSG on web-1's path (subnet NSG and NIC NSG), for its private IP and port 22.
    for nsg in ("nsg-web-subnet", "nsg-web-1"):
        (rule,) = deny_rules(side_by_side.state, nsg, "web-1")
        props = rule["properties"]
        assert DENY_NAME.match(rule["name"]), rule["name"]
        assert (props["direction"], props["sourceAddressPrefix"], props["destinationAddressPrefix"]) == ("Inbound", "*", "10.1.0.4")
        assert (props.get("destinationPortRanges") or [props.get("destinationPortRange")]) == ["22"]
        assert deny_rules(side_by_side.seed, nsg, "web-1") == []
    for vm in ("web-2", "win-1"):
        assert deny_rules(side_by_side.state, "nsg-web-subnet", vm) == []


def test_unpatched_azcollection_cannot_resolve_a_metadata_url(armsim):
    """Without azcollection_cloud/ the same settings fail in azure.azcollection before any request
    (ansible-collections/azure#2157), while jitaccess.azure works in the same run. When this test
    fails, the bundled azure.azcollection resolves metadata URLs itself: delete azcollection_cloud/."""
    from azure.cli.core import cloud

    assert not hasattr(cloud, "get_cloud_from_metadata_endpoint")
    tasks = """\
    - name: resource groups
      azure.azcollection.azure_rm_resourcegroup_info: {}
      ignore_errors: true
    - name: jit facts
      jitaccess.azure.nsg_jit_facts: {}
"""
    run = run_without_azure_environment(armsim, tasks, shim=False)
    assert run.rc == 0, run.stdout[-6000:] + run.stderr[-3000:]
    failed = run.result("resource groups")
    assert failed["failed"] is True
    assert "'AttributeError' object has no attribute 'message'" in failed["msg"]
    stats = armsim.stats()
    assert "GET resourcegroups" not in stats["by_operation"]
    facts = run.result("jit facts")["ansible_facts"]["azure_jit"]
    assert len(facts["virtual_machines"]) == 4
    assert stats["writes"] == 0
