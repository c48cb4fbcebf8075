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

from armsim import schema
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


# --- through the real SDK, every answer checked against the contract ----------------------------


def _status(pipeline_response, deserialized, headers):
    return pipeline_response.http_response.status_code, json.loads(pipeline_response.http_response.text() or "null")


@pytest.fixture
def sdk_policies(conformance_arm):
    conformance_arm.sim.reset()
    _cred, security, _network, _compute = conformance_arm.sim.sdk_clients()
    return security.jit_network_access_policies


def _body(data):
    import io

    return io.BytesIO(json.dumps(data).encode())


def test_every_example_replays_through_the_sdk_and_every_answer_follows_the_contract(sdk_policies):
    """Each example's operation through azure-mgmt-security: its status code, and an answer that
    validates against the 2020-01-01 response models (nothing outside the contract)."""
    create = example("CreateJitNetworkAccessPolicy")
    params = create["parameters"]
    schema.validate(params["body"], schema.JIT_POLICY)  # the example itself follows the contract
    status, answer = sdk_policies.create_or_update(
        params["resourceGroupName"], params["ascLocation"], params["jitNetworkAccessPolicyName"], _body(params["body"]), cls=_status
    )
    assert status == 200
    schema.validate(answer, schema.JIT_POLICY)

    params = example("GetJitNetworkAccessPolicy")["parameters"]
    status, answer = sdk_policies.get(params["resourceGroupName"], params["ascLocation"], params["jitNetworkAccessPolicyName"], cls=_status)
    assert status == 200
    schema.validate(answer, schema.JIT_POLICY)

    for policy in [*sdk_policies.list(), *sdk_policies.list_by_resource_group_and_region("myRg1", "westeurope")]:
        schema.validate(policy.serialize(keep_readonly=True), schema.JIT_POLICY)

    initiate = example("InitiateJitNetworkAccessPolicy")
    params = initiate["parameters"]
    body = copy.deepcopy(params["body"])
    body["virtualMachines"][0]["ports"][0]["endTimeUtc"] = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    schema.validate(body, schema.JIT_INITIATE)
    status, answer = sdk_policies.initiate(params["resourceGroupName"], params["ascLocation"], params["jitNetworkAccessPolicyName"], _body(body), cls=_status)
    assert status == int(next(iter(initiate["responses"])))
    schema.validate(answer, schema._REGISTRY["JitNetworkAccessRequest"])

    delete = example("DeleteJitNetworkAccessPolicy")
    params = delete["parameters"]
    statuses = [sdk_policies.delete(params["resourceGroupName"], params["ascLocation"], params["jitNetworkAccessPolicyName"], cls=_status)[0] for _ in range(2)]
    assert statuses == [200, 204] and set(delete["responses"]) == {"200", "204"}


def test_the_documented_answers_follow_the_contract_too():
    """The validator is not stricter than Azure itself: every documented answer passes it."""
    answers = {
        "CreateJitNetworkAccessPolicy": schema.JIT_POLICY,
        "GetJitNetworkAccessPolicy": schema.JIT_POLICY,
        "InitiateJitNetworkAccessPolicy": schema._REGISTRY["JitNetworkAccessRequest"],
    }
    for name, contract in answers.items():
        for response in example(name)["responses"].values():
            schema.validate(response["body"], contract)
    for name in ("GetJitNetworkAccessPoliciesSubscription", "GetJitNetworkAccessPoliciesResourceGroupLocation"):
        for policy in example(name)["responses"]["200"]["body"]["value"]:
            schema.validate(policy, schema.JIT_POLICY)
