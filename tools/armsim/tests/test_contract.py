"""armsim holds clients to Azure's published REST contract (schema.py), and answers within it.

* Every PUT and POST body is checked against the contract the SDK packages carry (Microsoft.Security
  2020-01-01, Microsoft.Network): unknown or misplaced members, wrong types and missing required
  members get a 400 with Json.NET's message and the path; read-only members are ignored; member
  names match case-insensitively.
* The specification's examples replay through the real SDK, and every answer validates against
  the contract: test_conformance.py.
"""

from datetime import UTC, datetime, timedelta

import pytest
from simtest import SUB, policy_body, port, vm_id


def end(minutes=60):
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def initiate(*ports):
    return {"virtualMachines": [{"id": vm_id("rg-web", "web-1"), "ports": list(ports)}], "justification": "contract"}


def put_web1(arm):
    assert arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22), port(3389)]))).status_code == 200


def with_(body, path, value):
    """A copy of ``body`` with ``value`` at ``path`` (keys and list indexes)."""
    import copy

    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


POLICY = policy_body(("rg-web", "web-1", [port(22)]))
VM = ("properties", "virtualMachines", 0)
PORT = (*VM, "ports", 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (with_(POLICY, ("extra",), 1), "Could not find member 'extra' on object of type 'JitNetworkAccessPolicy'. Path 'extra'."),
        (with_(POLICY, ("properties", "ports"), []), "member 'ports' on object of type 'JitNetworkAccessPolicyProperties'. Path 'properties.ports'."),
        (with_(POLICY, (*VM, "tags"), {}), "on object of type 'JitNetworkAccessPolicyVirtualMachine'. Path 'properties.virtualMachines[0].tags'."),
        (with_(POLICY, (*PORT, "duration"), "PT1H"), "Could not find member 'duration' on object of type 'JitNetworkAccessPortRule'."),
        # misplaced: a policy member one level too high
        (with_(POLICY, ("virtualMachines",), []), "Could not find member 'virtualMachines' on object of type 'JitNetworkAccessPolicy'."),
        (with_(POLICY, (*PORT, "number"), "twenty-two"), "value 'twenty-two' to type 'System.Int32'. Path 'properties.virtualMachines[0].ports[0].number'."),
        (with_(POLICY, (*PORT, "number"), 22.5), "to type 'System.Int32'"),
        (with_(POLICY, (*PORT, "number"), True), "to type 'System.Int32'"),
        (with_(POLICY, (*VM, "ports"), {"number": 22}), "into type 'List'. Path 'properties.virtualMachines[0].ports'."),
        (with_(POLICY, (*PORT, "allowedSourceAddressPrefixes"), "10.0.0.0/8"), "into type 'List'"),
        (with_(POLICY, (*PORT, "protocol"), None), "Required property 'protocol' not found in JSON. Path 'properties.virtualMachines[0].ports[0]'."),
        (with_(POLICY, (*VM, "id"), None), "Required property 'id' not found in JSON"),
        ({"kind": "Basic", "properties": {}}, "Required property 'virtualMachines' not found in JSON. Path 'properties'."),
    ],
)
def test_a_policy_body_outside_the_contract_is_refused_and_changes_nothing(arm, sim, body, message):
    before = sim.state()["jit_policies"]
    r = arm.policy("PUT", body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidRequestContent"
    assert error["message"].startswith("The request content was invalid and could not be deserialized: '")
    assert message in error["message"]
    assert sim.state()["jit_policies"] == before


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ([{"number": 22, "endTimeUtc": end(), "duration": "PT1H"}], "Could not find member 'duration' on object of type 'JitNetworkAccessPolicyInitiatePort'"),
        (
            [{"number": 22, "endTimeUtc": end(), "allowedSourceAddressPrefixes": ["10.0.0.1"]}],
            "Could not find member 'allowedSourceAddressPrefixes' on object of type 'JitNetworkAccessPolicyInitiatePort'. Path 'virtualMachines[0].ports[0]",
        ),
        ([{"number": 22, "endTimeUtc": "tomorrow"}], "Error converting value 'tomorrow' to type 'System.DateTime'"),
        ([{"number": 22}], "Required property 'endTimeUtc' not found in JSON. Path 'virtualMachines[0].ports[0]'."),
    ],
)
def test_an_initiate_body_outside_the_contract_is_refused_and_opens_nothing(arm, sim, ports, message):
    put_web1(arm)
    r = arm.policy("POST", initiate(*ports), action="/initiate")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "InvalidRequestContent"
    assert message in r.json()["error"]["message"]
    assert not arm.policy("GET").json()["properties"].get("requests")


def test_read_only_members_are_ignored_and_names_match_case_insensitively(arm):
    body = {
        "id": "/ignored",
        "name": "ignored",
        "type": "ignored",
        "location": "ignored",
        "Kind": "Basic",
        "Properties": {"provisioningState": "Failed", "VirtualMachines": [{"ID": vm_id("rg-web", "web-1"), "Ports": [port(22)]}]},
    }
    r = arm.policy("PUT", body)
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["provisioningState"] == "Succeeded"
    assert r.json()["name"] == "default"


def test_network_bodies_are_checked_too(arm, sim):
    rule = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-spare/securityRules/r1"
    props = {"protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 200, "sourceAddressPrefix": "*", "sourcePortRange": "*"}
    props.update(destinationAddressPrefix="*", destinationPortRange="22")
    bad = arm.call("PUT", rule, {"properties": dict(props, sourceAddressPrefixs=["10.0.0.0/8"])})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidRequestFormat"
    assert "Could not find member 'sourceAddressPrefixs'" in bad.json()["error"]["message"]
    wrong = arm.call("PUT", rule, {"properties": dict(props, priority={"value": 200})})
    assert wrong.status_code == 400 and "System.Int32" in wrong.json()["error"]["message"]
    nsg = next(n for n in sim.state()["network_security_groups"] if n["name"] == "nsg-spare")
    assert nsg["properties"].get("securityRules", []) == []
    # read-only members of a GET sent back unchanged are ignored (a GET-modify-PUT round trip)
    ok = arm.call("PUT", rule, {"properties": dict(props, provisioningState="Succeeded"), "etag": 'W/"x"', "type": "t"})
    assert ok.status_code in (200, 201), ok.text
