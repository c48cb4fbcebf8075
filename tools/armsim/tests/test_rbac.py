"""Least privilege: ARM request -> RBAC action mapping, wildcard allow-lists, and the 403 a
principal with a seeded ``actions`` allow-list gets for anything else."""

import copy
import json

import pytest
from simtest import JIT_API, SEED, SUB, Arm, policy_body, port, vm_id

from armsim import model, rbac
from armsim.testing import ArmSim

RG = f"/subscriptions/{SUB}/resourceGroups/rg-web"
NET = RG + "/providers/Microsoft.Network"
POLICY = RG + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"


@pytest.mark.parametrize(
    "method, path, action",
    [
        ("GET", RG + "/providers/Microsoft.Compute/virtualMachines/web-1", "Microsoft.Compute/virtualMachines/read"),
        ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines/read"),
        ("GET", RG + "/providers/Microsoft.Compute/virtualMachines/web-1/instanceView", "Microsoft.Compute/virtualMachines/instanceView/read"),
        ("GET", NET + "/networkSecurityGroups/nsg-web", "Microsoft.Network/networkSecurityGroups/read"),
        ("GET", NET + "/networkSecurityGroups", "Microsoft.Network/networkSecurityGroups/read"),
        ("GET", NET + "/networkSecurityGroups/nsg-web/securityRules/r1", "Microsoft.Network/networkSecurityGroups/securityRules/read"),
        ("GET", NET + "/networkSecurityGroups/nsg-web/securityRules", "Microsoft.Network/networkSecurityGroups/securityRules/read"),
        ("PUT", NET + "/networkSecurityGroups/nsg-web/securityRules/r1", "Microsoft.Network/networkSecurityGroups/securityRules/write"),
        ("DELETE", NET + "/networkSecurityGroups/nsg-web/securityRules/r1", "Microsoft.Network/networkSecurityGroups/securityRules/delete"),
        ("PATCH", NET + "/networkSecurityGroups/nsg-web", "Microsoft.Network/networkSecurityGroups/write"),
        ("GET", NET + "/networkInterfaces/nic-1", "Microsoft.Network/networkInterfaces/read"),
        ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/publicIPAddresses", "Microsoft.Network/publicIPAddresses/read"),
        ("GET", NET + "/virtualNetworks/vnet-web/subnets/default", "Microsoft.Network/virtualNetworks/subnets/read"),
        ("GET", POLICY, "Microsoft.Security/locations/jitNetworkAccessPolicies/read"),
        ("PUT", POLICY, "Microsoft.Security/locations/jitNetworkAccessPolicies/write"),
        ("DELETE", POLICY, "Microsoft.Security/locations/jitNetworkAccessPolicies/delete"),
        ("POST", POLICY + "/initiate", "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"),
        (
            "GET",
            RG + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies",
            "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
        ),
        # provider-wide JIT lists: Azure registers the type under locations/
        ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies", "Microsoft.Security/locations/jitNetworkAccessPolicies/read"),
        ("GET", RG + "/providers/Microsoft.Security/jitNetworkAccessPolicies", "Microsoft.Security/locations/jitNetworkAccessPolicies/read"),
        ("GET", f"/subscriptions/{SUB}/resourcegroups", "Microsoft.Resources/subscriptions/resourceGroups/read"),
        ("HEAD", RG, "Microsoft.Resources/subscriptions/resourceGroups/read"),
        ("GET", f"/subscriptions/{SUB}", "Microsoft.Resources/subscriptions/read"),
        ("GET", "/subscriptions", "Microsoft.Resources/subscriptions/read"),
        ("GET", RG, "Microsoft.Resources/subscriptions/resourceGroups/read"),
        # LRO status polls need no action
        ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope/operations/abc", None),
        ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope/operationResults/abc", None),
    ],
)
def test_action_for(method, path, action):
    assert rbac.action_for(method, path) == action


@pytest.mark.parametrize(
    "entries, action, expected",
    [
        (["Microsoft.Compute/virtualMachines/read"], "Microsoft.Compute/virtualMachines/read", True),
        (["microsoft.compute/VIRTUALMACHINES/read"], "Microsoft.Compute/virtualMachines/read", True),
        (["Microsoft.Compute/virtualMachines/read"], "Microsoft.Compute/virtualMachines/write", False),
        (["Microsoft.Compute/virtualMachines/read"], "Microsoft.Compute/virtualMachines/instanceView/read", False),
        (["Microsoft.Compute/*/read"], "Microsoft.Compute/virtualMachines/instanceView/read", True),
        (["Microsoft.Security/locations/jitNetworkAccessPolicies/*/read"], "Microsoft.Security/locations/jitNetworkAccessPolicies/read", False),
        (["Microsoft.Security/locations/jitNetworkAccessPolicies/*"], "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action", True),
        (["*/read"], "Microsoft.Network/networkSecurityGroups/securityRules/read", True),
        (["*/read"], "Microsoft.Network/networkSecurityGroups/securityRules/delete", False),
        (["*"], "Microsoft.Network/networkSecurityGroups/securityRules/delete", True),
        ([], "Microsoft.Compute/virtualMachines/read", False),
        (["Microsoft.Network/networkSecurityGroups/read"], "Microsoft.Network/networkSecurityGroups/readX", False),
    ],
)
def test_allowed_wildcards(entries, action, expected):
    assert rbac.allowed(entries, action) is expected


def test_policy_put_needs_vm_write():
    body = policy_body(("rg-web", "web-1", [port(22)]), ("rg-web", "web-2", [port(22)]))
    extra = rbac.extra_checks("PUT", POLICY, json.dumps(body).encode())
    assert extra == [
        ("Microsoft.Compute/virtualMachines/write", vm_id("rg-web", "web-1")),
        ("Microsoft.Compute/virtualMachines/write", vm_id("rg-web", "web-2")),
    ]
    assert rbac.extra_checks("GET", POLICY, b"") == []
    assert rbac.extra_checks("PUT", POLICY, b"not json") == []


# --- over HTTP ----------------------------------------------------------------------------------

LIMITED_ID = "44444444-4444-4444-4444-444444444444"
NO_VM_WRITE_ID = "55555555-5555-5555-5555-555555555555"
JIT_ALL = [
    "Microsoft.Security/locations/jitNetworkAccessPolicies/*",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Network/networkSecurityGroups/read",
]


@pytest.fixture(scope="module")
def limited():
    seed = copy.deepcopy(SEED)
    seed["principals"] += [
        {"client_id": LIMITED_ID, "client_secret": "limited-secret", "name": "limited", "actions": [*JIT_ALL, "Microsoft.Compute/virtualMachines/write"]},
        {"client_id": NO_VM_WRITE_ID, "client_secret": "novm-secret", "name": "no-vm-write", "actions": JIT_ALL},
    ]
    with ArmSim(seed) as sim:
        yield sim


def _token(arm, client_id, secret):
    return arm.token(client_id, secret).json()["access_token"]


def test_allow_list_over_http(limited):
    arm = Arm(limited)
    token = _token(arm, LIMITED_ID, "limited-secret")
    assert arm.call("GET", RG + "/providers/Microsoft.Compute/virtualMachines", token=token, api="2024-07-01").status_code == 200
    assert arm.call("GET", NET + "/networkSecurityGroups", token=token).status_code == 200
    body = policy_body(("rg-web", "web-1", [port(22)]))
    assert arm.call("PUT", POLICY, body, token=token, api=JIT_API).status_code in (200, 201)
    # not in the list: NIC read and rule delete
    r = arm.call("GET", NET + "/networkInterfaces", token=token)
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    oid = model.stable_uuid("principal", LIMITED_ID)
    assert error["message"].startswith(f"The client '{LIMITED_ID}' with object id '{oid}' does not have authorization to perform action ")
    assert "'Microsoft.Network/networkInterfaces/read'" in error["message"]
    assert f"over scope '{NET}/networkInterfaces' or the scope is invalid." in error["message"]
    r = arm.call("DELETE", NET + "/networkSecurityGroups/nsg-web/securityRules/AllowHttps", token=token)
    assert r.status_code == 403 and "Microsoft.Network/networkSecurityGroups/securityRules/delete" in r.json()["error"]["message"]
    # the Owner without actions is unchanged
    assert arm.call("GET", NET + "/networkInterfaces").status_code == 200


def test_policy_put_without_vm_write_is_refused(limited):
    limited.reset()
    arm = Arm(limited)
    token = _token(arm, NO_VM_WRITE_ID, "novm-secret")
    body = policy_body(("rg-web", "web-1", [port(22)]))
    r = arm.call("PUT", POLICY, body, token=token, api=JIT_API)
    assert r.status_code == 403
    message = r.json()["error"]["message"]
    assert "'Microsoft.Compute/virtualMachines/write'" in message and f"over scope '{vm_id('rg-web', 'web-1')}'" in message
    assert arm.call("GET", POLICY, token=token, api=JIT_API).status_code == 404  # nothing written


def test_seed_rejects_bad_actions():
    from armsim import seed as seedmod

    bad = copy.deepcopy(SEED)
    bad["principals"][0]["actions"] = "Microsoft.Compute/*"
    with pytest.raises(seedmod.SeedError):
        seedmod.build_state(bad, 0.0)
