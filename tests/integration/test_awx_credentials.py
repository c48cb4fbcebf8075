"""The AWX / Automation Platform "Microsoft Azure Resource Manager" credential shapes, through the
environment variables only (what AWX injects into a job), against armsim.

Each run unsets every AZURE_* variable of the test process and passes only the credential's own:
a service principal (AZURE_CLIENT_ID, AZURE_SECRET, AZURE_TENANT), a user and password
(AZURE_AD_USER, AZURE_PASSWORD), each with AZURE_SUBSCRIPTION_ID and AZURE_CLOUD_ENVIRONMENT (the
cloud environment field: armsim's ARM metadata URL). armsim's authority is private, so
AZURE_DISABLE_INSTANCE_DISCOVERY is set as a job's extra environment variable would set it.

The user and password shape signs in at an ADFS authority (AZURE_ADFS_AUTHORITY_URL, tenant
``adfs``, as Azure Stack Hub uses): for any other authority MSAL first asks the authority's host
on port 443 whether the user is federated (``/common/userrealm``), which a test server on a
loopback port cannot answer. The public-cloud path builds the same credential class
(tests/unit/plugins/module_utils/test_auth.py).
"""

import os

import yaml
from harness import run_playbook

from armsim.model import stable_uuid
from armsim.seed import DEFAULT_PRINCIPAL

SEED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "jit_request.yaml")
USER = {"username": "ops@contoso.example", "password": "Pa%ss w0rd;'\"$HOME", "name": "Ops Engineer"}
AZURE_VARIABLES = sorted(
    {name for name in os.environ if name.startswith("AZURE_")}
    | {"AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT", "AZURE_SUBSCRIPTION_ID", "AZURE_CLOUD_ENVIRONMENT", "AZURE_AD_USER", "AZURE_PASSWORD"}
    | {"AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_PROFILE", "ANSIBLE_AZURE_AUTH_SOURCE", "AZURE_ADFS_AUTHORITY_URL", "AZURE_DISABLE_INSTANCE_DISCOVERY"}
)


def _seed():
    with open(SEED_FILE, encoding="utf-8") as stream:
        seed = yaml.safe_load(stream)
    seed["principals"] = [*(seed.get("principals") or [DEFAULT_PRINCIPAL]), USER]
    return seed


ARMSIM_SEED = _seed()
ARMSIM_OPTIONS = {"apply_delay": 0.5}


def awx_env(armsim, **credential):
    """Only what an AWX job with that credential has: every other AZURE_* variable unset."""
    env = dict.fromkeys(AZURE_VARIABLES)
    env.update(
        AZURE_SUBSCRIPTION_ID=armsim.info["subscription_id"],
        AZURE_CLOUD_ENVIRONMENT=armsim.info["metadata_url"],
        AZURE_DISABLE_INSTANCE_DISCOVERY="true",
        HOME=os.environ.get("HOME"),
    )
    env.update(credential)
    return env


def open_and_close(armsim, env):
    vm = {"name": "both-1", "resource_group": "rg-jit"}
    tasks = [
        {"name": "facts", "jitaccess.azure.nsg_jit_facts": {"resource_groups": ["rg-jit"], "detail": "summary"}},
        {
            "name": "open",
            "jitaccess.azure.jit_request": {"virtual_machines": [vm], "ports": [22], "source_address_prefixes": ["203.0.113.9"], "duration": "15m"},
        },
        {"name": "close", "jitaccess.azure.jit_request": {"virtual_machines": [vm], "ports": [22], "state": "absent"}},
    ]
    run = run_playbook(armsim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], env=env, args=["-vvv"])
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run


def requests_of(armsim):
    (policy,) = [p for p in armsim.state()["jit_policies"] if "/resourcegroups/rg-jit/" in p["id"].lower()]
    return policy["properties"]["requests"]


def allow_rules_left(armsim):
    return [
        rule["name"]
        for nsg in armsim.state()["network_security_groups"]
        for rule in nsg["properties"]["securityRules"]
        if rule["name"].startswith("MicrosoftDefenderForCloud-JITRule-")
    ]


def test_service_principal_credential(armsim):
    info = armsim.info
    env = awx_env(armsim, AZURE_CLIENT_ID=info["client_id"], AZURE_SECRET=info["client_secret"], AZURE_TENANT=info["tenant_id"])
    run = open_and_close(armsim, env)
    facts = run.result("facts")["ansible_facts"]["azure_jit"]
    assert {vm["name"] for vm in facts["virtual_machines"]} >= {"both-1", "bystander-1"}
    (request,) = requests_of(armsim)
    # a service principal is recorded by its object id: its app-only token has no name (issue 15)
    assert request["requestor"] == stable_uuid("principal", info["client_id"])
    assert armsim.stats()["by_operation"]["POST initiate"] == 1
    assert allow_rules_left(armsim) == []
    assert info["client_secret"] not in run.stdout + run.stderr


def test_user_and_password_credential(armsim):
    env = awx_env(
        armsim,
        AZURE_AD_USER=USER["username"],
        AZURE_PASSWORD=USER["password"],
        AZURE_TENANT="adfs",
        AZURE_ADFS_AUTHORITY_URL=armsim.info["login_url"],
    )
    run = open_and_close(armsim, env)
    (request,) = requests_of(armsim)
    assert request["requestor"] == USER["username"]  # the user's own request (its UPN), not an application's
    assert run.result("close")["closed"][0]["port"] == 22
    assert allow_rules_left(armsim) == []
    assert USER["password"] not in run.stdout + run.stderr


def test_a_credential_missing_its_secret_names_what_is_missing(armsim):
    env = awx_env(armsim, AZURE_AD_USER=USER["username"], AZURE_TENANT=armsim.info["tenant_id"], ANSIBLE_AZURE_AUTH_SOURCE="env")
    tasks = [{"name": "facts", "jitaccess.azure.nsg_jit_facts": {}}]
    run = run_playbook(armsim, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], env=env)
    result = run.result("facts")
    assert result["failed"] and "auth_source=env needs a service principal" in result["msg"] and "ad_user and password" in result["msg"]
    assert armsim.stats()["requests"] == 0  # nothing reached ARM
