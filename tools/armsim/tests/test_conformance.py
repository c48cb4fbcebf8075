"""Replay the official REST examples of jitNetworkAccessPolicies (api-version 2020-01-01) and
check that armsim answers with the documented status code and the same shape (keys and types).

Deviation from a literal replay: the examples' endTimeUtc values lie in 2018; armsim rejects
past end times (as the service would), so the Initiate replay moves endTimeUtc one hour ahead.
"""

import copy
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from simtest import CLIENT_ID, SECRET, TENANT, Arm

from armsim.testing import ArmSim

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "rest-examples")
SUB = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"
OPTIONAL = {"justification"}  # present on some requests of an example, absent on others
SEED = {
    "subscription_id": SUB,
    "tenant_id": TENANT,
    "principals": [{"client_id": CLIENT_ID, "client_secret": SECRET, "name": "barbara@contoso.com"}],
    "resource_groups": [
        {
            "name": "myRg1",
            "location": "westeurope",
            "network_security_groups": [{"name": "vm1-nsg"}],
            "virtual_networks": [{"name": "vnet", "address_space": "10.0.0.0/16"}],
            "virtual_machines": [{"name": "vm1", "nics": [{"nsg": "vm1-nsg"}]}],
        }
    ],
}


def example(name: str) -> dict:
    with open(os.path.join(FIXTURES, f"{name}_example.json"), encoding="utf-8") as fh:
        return json.load(fh)


def assert_same_shape(ours, theirs, path="$"):
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{path}: expected an object, got {ours!r}"
        missing = set(theirs) - set(ours) - OPTIONAL
        extra = set(ours) - set(theirs) - OPTIONAL
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        assert not extra, f"{path}: unexpected keys {sorted(extra)}"
        for key in set(ours) & set(theirs):
            assert_same_shape(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), f"{path}: expected an array"
        assert bool(ours) == bool(theirs), f"{path}: expected {len(theirs)} items, got {len(ours)}"
        for i, item in enumerate(ours):
            assert_same_shape(item, theirs[0], f"{path}[{i}]")
    else:
        assert type(ours) is type(theirs), f"{path}: {ours!r} is not a {type(theirs).__name__}"


def policy_path(params: dict) -> str:
    return (
        f"/subscriptions/{params['subscriptionId']}/resourceGroups/{params['resourceGroupName']}/providers/Microsoft.Security"
        f"/locations/{params['ascLocation']}/jitNetworkAccessPolicies/{params['jitNetworkAccessPolicyName']}"
    )


@pytest.fixture(scope="module")
def conformance_arm():
    with ArmSim(SEED) as sim:
        yield Arm(sim)


@pytest.fixture
def created(conformance_arm):
    conformance_arm.sim.reset()
    ex = example("CreateJitNetworkAccessPolicy")
    r = conformance_arm.call("PUT", policy_path(ex["parameters"]), ex["parameters"]["body"], api=ex["parameters"]["api-version"])
    return conformance_arm, ex, r


def test_create(created):
    _, ex, r = created
    assert r.status_code == 200
    assert_same_shape(r.json(), ex["responses"]["200"]["body"])
    ours, theirs = r.json(), ex["responses"]["200"]["body"]
    assert ours["id"] == theirs["id"] and ours["properties"]["virtualMachines"] == theirs["properties"]["virtualMachines"]


def test_get(created):
    arm, _, _ = created
    ex = example("GetJitNetworkAccessPolicy")
    r = arm.call("GET", policy_path(ex["parameters"]), api=ex["parameters"]["api-version"])
    assert r.status_code == 200
    assert_same_shape(r.json(), ex["responses"]["200"]["body"])


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("GetJitNetworkAccessPoliciesSubscription", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/jitNetworkAccessPolicies"),
        (
            "GetJitNetworkAccessPoliciesResourceGroupLocation",
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Security/locations/{ascLocation}/jitNetworkAccessPolicies",
        ),
    ],
)
def test_lists(created, name, path):
    arm, _, _ = created
    ex = example(name)
    r = arm.call("GET", path.format(**ex["parameters"]), api=ex["parameters"]["api-version"])
    assert r.status_code == 200
    assert_same_shape(r.json(), ex["responses"]["200"]["body"])


def test_initiate(created):
    arm, _, _ = created
    ex = example("InitiateJitNetworkAccessPolicy")
    body = copy.deepcopy(ex["parameters"]["body"])
    body["virtualMachines"][0]["ports"][0]["endTimeUtc"] = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    r = arm.call("POST", policy_path(ex["parameters"]) + "/initiate", body, api=ex["parameters"]["api-version"])
    assert r.status_code == 202
    assert_same_shape(r.json(), ex["responses"]["202"]["body"])
    assert r.json()["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"] == "192.127.0.2"


def test_delete(created):
    arm, _, _ = created
    ex = example("DeleteJitNetworkAccessPolicy")
    assert set(ex["responses"]) == {"200", "204"}
    assert arm.call("DELETE", policy_path(ex["parameters"]), api=ex["parameters"]["api-version"]).status_code == 200
    assert arm.call("DELETE", policy_path(ex["parameters"]), api=ex["parameters"]["api-version"]).status_code == 204


def test_sdk_reads_the_examples(created):
    """The SDK models deserialise armsim's answers (and the documented ones) the same way."""
    from azure.mgmt.security.v2020_01_01.models import JitNetworkAccessPolicy

    arm, ex, r = created
    ours = JitNetworkAccessPolicy.deserialize(r.json())
    theirs = JitNetworkAccessPolicy.deserialize(ex["responses"]["200"]["body"])
    assert ours.as_dict() == theirs.as_dict()
