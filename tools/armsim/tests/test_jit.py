"""JIT network access policies: list scopes, PUT/GET/DELETE, validation, deny and allow rules,
initiate, apply delay, supersession and expiry."""

import copy
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.security.v2020_01_01 import models as m
from simtest import CLIENT_ID, SEED, SUB, policy_body, port, vm_id, wait_for

from armsim import seed
from armsim.model import stable_uuid

DENY_NAME = re.compile(r"^MicrosoftDefenderForCloud-JITRule_-?\d+_[0-9A-F]{32}$")
ALLOW_NAME = re.compile(r"^MicrosoftDefenderForCloud-JITRule--?\d+-[0-9A-F]{32}$")
NET = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups"


def rules(arm, nsg: str, rg: str = "rg-web") -> list[dict]:
    path = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{nsg}"
    return arm.call("GET", path).json()["properties"]["securityRules"]


def jit_rules(arm, nsg: str, access: str, rg: str = "rg-web") -> list[dict]:
    return [r for r in rules(arm, nsg, rg) if r["name"].startswith("MicrosoftDefenderForCloud-JITRule") and r["properties"]["access"] == access]


def end(minutes: float = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def initiate_body(*vms: tuple[str, list]) -> dict:
    return {"virtualMachines": [{"id": vm_id("rg-web", name), "ports": ports} for name, ports in vms], "justification": "deploy"}


def put_web1(arm, ports=None):
    r = arm.policy("PUT", policy_body(("rg-web", "web-1", ports or [port(22), port(3389, "10.0.0.0/8")])))
    assert r.status_code == 200, r.text
    return r.json()


# --- policies --------------------------------------------------------------------------------


def test_put_get_and_list_scopes(arm, clients):
    security = clients[1]
    body = put_web1(arm, [port(22, duration="PT180M", protocol="tcp")])
    assert body["kind"] == "Basic" and body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["virtualMachines"][0]["ports"] == [port(22, duration="PT3H", protocol="TCP")]
    assert body["properties"]["requests"] == [] and "etag" not in body
    assert body["id"] == f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    assert arm.policy("PUT", policy_body(("rg-db", "db-1", [port(22)])), rg="rg-db", loc="northeurope").status_code == 200
    assert len(list(security.jit_network_access_policies.list())) == 2
    assert [p.name for p in security.jit_network_access_policies.list_by_region("westeurope")] == ["default"]
    assert [p.location for p in security.jit_network_access_policies.list_by_resource_group("rg-db")] == ["northeurope"]
    assert len(list(security.jit_network_access_policies.list_by_resource_group_and_region("rg-web", "westeurope"))) == 1
    assert list(security.jit_network_access_policies.list_by_resource_group_and_region("rg-web", "northeurope")) == []
    got = security.jit_network_access_policies.get("rg-web", "westeurope", "default")
    assert got.virtual_machines[0].ports[0].max_request_access_duration == "PT3H"
    with pytest.raises(ResourceNotFoundError):
        security.jit_network_access_policies.get("rg-web", "westeurope", "nope")
    assert arm.jit("GET", "/resourceGroups/nope/providers/Microsoft.Security/jitNetworkAccessPolicies").status_code == 404


def test_sdk_create_or_update(clients, sim):
    security = clients[1]
    policy = m.JitNetworkAccessPolicy(
        kind="Basic",
        virtual_machines=[
            m.JitNetworkAccessPolicyVirtualMachine(
                id=vm_id("rg-web", "web-1"),
                ports=[
                    m.JitNetworkAccessPortRule(
                        number=22, protocol="TCP", allowed_source_address_prefixes=["10.0.0.0/8", "192.168.1.1"], max_request_access_duration="PT1H30M"
                    )
                ],
            )
        ],
    )
    out = security.jit_network_access_policies.create_or_update("rg-web", "westeurope", "default", policy)
    assert out.virtual_machines[0].ports[0].allowed_source_address_prefixes == ["10.0.0.0/8", "192.168.1.1"]
    assert out.virtual_machines[0].ports[0].max_request_access_duration == "PT1H30M"
    assert sim.stats()["by_operation"]["PUT jitNetworkAccessPolicies"] == 1
    security.jit_network_access_policies.delete("rg-web", "westeurope", "default")
    assert list(security.jit_network_access_policies.list()) == []


def test_delete_status_codes(arm):
    put_web1(arm)
    assert arm.policy("DELETE").status_code == 200
    assert arm.policy("DELETE").status_code == 204


def test_wrong_api_version(arm):
    r = arm.jit("GET", "/providers/Microsoft.Security/jitNetworkAccessPolicies", api="2015-06-01-preview")
    assert r.status_code == 400 and r.json()["error"]["code"] == "NoRegisteredProviderFound"


def _bad_port(**changes):
    p = port(22)
    for k, v in changes.items():
        if v is None:
            p.pop(k)
        else:
            p[k] = v
    return policy_body(("rg-web", "web-1", [p]))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_bad_port(number=65536), "InvalidPortNumber"),
        (_bad_port(number=-1), "InvalidPortNumber"),
        (_bad_port(protocol="ICMP"), "InvalidProtocol"),
        (_bad_port(maxRequestAccessDuration="PT4M"), "InvalidMaxRequestAccessDuration"),
        (_bad_port(maxRequestAccessDuration="P1DT1M"), "InvalidMaxRequestAccessDuration"),
        (_bad_port(maxRequestAccessDuration="3 hours"), "InvalidMaxRequestAccessDuration"),
        (_bad_port(allowedSourceAddressPrefixes=["10.0.0.0/8"]), "InvalidAllowedSourceAddressPrefix"),
        (_bad_port(allowedSourceAddressPrefix=None), "InvalidAllowedSourceAddressPrefix"),
        (_bad_port(allowedSourceAddressPrefix="2001:db8::/32"), "InvalidAllowedSourceAddressPrefix"),
        (_bad_port(allowedSourceAddressPrefix="not-an-ip"), "InvalidAllowedSourceAddressPrefix"),
        (policy_body(("rg-web", "nope", [port(22)])), "VirtualMachineNotFound"),
        (policy_body(("rg-db", "db-1", [port(22)])), "VirtualMachineLocationMismatch"),
        (policy_body(("rg-web", "bare-1", [port(22)])), "VirtualMachineNotSupported"),
        (policy_body(("rg-web", "web-1", [port(22), port(22)])), "DuplicatePortNumber"),
        (policy_body(("rg-web", "web-1", [port(22)]), ("rg-web", "web-1", [port(22)])), "DuplicateVirtualMachine"),
        (policy_body(("rg-web", "web-1", [])), "InvalidRequestContent"),
        ({"kind": "Basic"}, "InvalidRequestContent"),
    ],
)
def test_policy_validation(arm, body, code):
    r = arm.policy("PUT", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert arm.policy("GET").status_code == 404
    assert jit_rules(arm, "nsg-web-1", "Deny") == []


def test_boundaries_accepted(arm):
    ok = [port(0, duration="PT5M"), port(65535, duration="P1D"), port(80, duration="PT24H", protocol="UDP")]
    assert arm.policy("PUT", policy_body(("rg-web", "web-1", ok))).status_code == 200


def test_vm_in_two_policies(arm):
    put_web1(arm)
    r = arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)])), name="other")
    assert r.status_code == 400 and r.json()["error"]["code"] == "VirtualMachineInMultiplePolicies"


# --- deny rules --------------------------------------------------------------------------------


def test_deny_rules_on_nic_and_subnet_nsg(arm):
    etag = arm.call("GET", NET + "/nsg-web").json()["etag"]
    put_web1(arm)
    for nsg in ("nsg-web-1", "nsg-web"):
        [deny] = jit_rules(arm, nsg, "Deny")
        p = deny["properties"]
        assert DENY_NAME.match(deny["name"]), deny["name"]
        assert p["description"] == "MDC JIT Network Access rule for policy 'default' of VM 'web-1'."
        assert (p["direction"], p["access"], p["protocol"], p["sourceAddressPrefix"], p["sourcePortRange"]) == ("Inbound", "Deny", "*", "*", "*")
        assert p["destinationAddressPrefix"] == "10.1.0.4"
        assert p["destinationPortRanges"] == ["22", "3389"]
        assert p["priority"] == 1000  # "top priority" when no rule exists for the ports: from 1000 up
    assert arm.call("GET", NET + "/nsg-web").json()["etag"] != etag
    arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)]), ("rg-web", "win-1", [port(3389)])))
    prios = sorted(r["properties"]["priority"] for r in jit_rules(arm, "nsg-web", "Deny"))
    assert prios == [1000, 1001]


def test_deny_placement_bottom_and_allow_rules_always_before_the_deny_rule(arm, sim):
    """deny_placement: top (default, documented) or bottom (4096 down, seen in exports). Either
    way an allow rule goes before its VM's deny rule, at the lowest free priority."""
    sim.config(deny_placement="bottom")
    put_web1(arm)
    assert [r["properties"]["priority"] for r in jit_rules(arm, "nsg-web-1", "Deny")] == [4096]
    body = initiate_body(("web-1", [{"number": 22, "endTimeUtc": end(), "allowedSourceAddressPrefix": "10.9.9.9"}]))
    assert arm.policy("POST", body, action="/initiate").status_code == 202
    assert [r["properties"]["priority"] for r in jit_rules(arm, "nsg-web-1", "Allow")] == [100]
    with pytest.raises(Exception, match="deny_placement"):
        sim.config(deny_placement="middle")


def test_deny_rule_after_overlapping_allow_rule(arm):
    """A pre-existing allow-from-anywhere rule on the port keeps precedence: JIT is bypassed."""
    r = arm.policy("PUT", policy_body(("rg-web", "web-2", [port(22)])))
    assert r.status_code == 200
    [deny] = jit_rules(arm, "nsg-open", "Deny")
    assert deny["properties"]["priority"] == 301
    [subnet_deny] = jit_rules(arm, "nsg-web", "Deny")  # AllowHttps (443) does not overlap 22
    assert subnet_deny["properties"]["priority"] == 1000
    # the allow rule of a request goes before the deny rule on each NSG, even right after 300
    body = initiate_body(("web-2", [{"number": 22, "endTimeUtc": end(), "allowedSourceAddressPrefix": "10.9.9.9"}]))
    assert arm.policy("POST", body, action="/initiate").status_code == 202
    [allow] = jit_rules(arm, "nsg-open", "Allow")
    assert allow["properties"]["priority"] == 100 < deny["properties"]["priority"]


def test_policy_update_keeps_rules_consistent(arm):
    put_web1(arm)
    [before] = jit_rules(arm, "nsg-web-1", "Deny")
    etag = arm.call("GET", NET + "/nsg-web-1").json()["etag"]
    put_web1(arm)  # same policy again: no rule write
    assert arm.call("GET", NET + "/nsg-web-1").json()["etag"] == etag
    put_web1(arm, [port(22), port(5985)])
    [after] = jit_rules(arm, "nsg-web-1", "Deny")
    assert after["name"] == before["name"] and after["properties"]["destinationPortRanges"] == ["22", "5985"]
    assert arm.call("GET", NET + "/nsg-web-1").json()["etag"] != etag
    arm.policy("PUT", policy_body(("rg-web", "win-1", [port(3389)])))  # web-1 taken out
    assert jit_rules(arm, "nsg-web-1", "Deny") == []
    assert [r["properties"]["destinationAddressPrefix"] for r in jit_rules(arm, "nsg-web", "Deny")] == ["10.1.0.6"]
    arm.policy("DELETE")
    assert jit_rules(arm, "nsg-web", "Deny") == []


def test_old_prefix_rule_is_recognised(arm):
    old = {
        "properties": {
            "description": "ASC JIT Network Access rule for policy 'default' of VM 'web-1'.",
            "protocol": "*",
            "sourcePortRange": "*",
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": "10.1.0.4",
            "destinationPortRanges": ["22"],
            "access": "Deny",
            "priority": 1000,
            "direction": "Inbound",
        }
    }
    name = "SecurityCenter-JITRule_123456_0123456789ABCDEF0123456789ABCDEF"
    assert arm.call("PUT", NET + f"/nsg-web-1/securityRules/{name}", old).status_code == 201
    put_web1(arm)
    [deny] = [r for r in rules(arm, "nsg-web-1") if r["properties"]["access"] == "Deny"]
    assert deny["name"] == name and deny["properties"]["destinationPortRanges"] == ["22", "3389"] and deny["properties"]["priority"] == 1000


def test_nsg_put_without_jit_rules_drops_them(arm):
    put_web1(arm)
    nsg = arm.call("GET", NET + "/nsg-web-1").json()
    nsg["properties"]["securityRules"] = []
    assert arm.call("PUT", NET + "/nsg-web-1", nsg).status_code == 200
    assert jit_rules(arm, "nsg-web-1", "Deny") == []
    put_web1(arm)  # a policy write restores them
    assert len(jit_rules(arm, "nsg-web-1", "Deny")) == 1


def test_seed_policies():
    data = copy.deepcopy(SEED)
    data["jit_policies"] = [
        {
            "name": "default",
            "resource_group": "rg-web",
            "virtual_machines": ["web-1", {"name": "win-1", "ports": [{"number": 3389, "max_request_access_duration": "PT1H"}]}],
        }
    ]
    state = seed.build_state(data, time.time())
    [policy] = state.policies.values()
    assert [len(v["ports"]) for v in policy.virtual_machines] == [1, 1]
    nsg = state.nsgs[f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web".lower()]
    denies = [r for r in nsg.rules.values() if r.access == "Deny"]
    assert sorted(r.priority for r in denies) == [1000, 1001]
    bad = copy.deepcopy(SEED)
    bad["jit_policies"] = [{"resource_group": "rg-web", "virtual_machines": ["bare-1"]}]
    with pytest.raises(seed.SeedError, match="VirtualMachineNotSupported"):
        seed.build_state(bad, time.time())


# --- initiate ----------------------------------------------------------------------------------


def test_initiate_via_sdk(arm, clients, sim):
    put_web1(arm)
    security = clients[1]
    req = m.JitNetworkAccessPolicyInitiateRequest(
        virtual_machines=[
            m.JitNetworkAccessPolicyInitiateVirtualMachine(
                id=vm_id("rg-web", "web-1"), ports=[m.JitNetworkAccessPolicyInitiatePort(number=22, end_time_utc=datetime.now(UTC) + timedelta(hours=1))]
            )
        ],
        justification="deploy v2",
    )
    out = security.jit_network_access_policies.initiate("rg-web", "westeurope", "default", req)
    assert out.requestor == stable_uuid("principal", CLIENT_ID) and out.justification == "deploy v2"  # an app: its object id
    [vm] = out.virtual_machines
    assert (vm.ports[0].allowed_source_address_prefix, vm.ports[0].status, vm.ports[0].status_reason) == ("127.0.0.1", "Initiated", "UserRequested")
    for nsg in ("nsg-web-1", "nsg-web"):
        [allow] = jit_rules(arm, nsg, "Allow")
        p = allow["properties"]
        assert ALLOW_NAME.match(allow["name"]), allow["name"]
        assert p["description"] == "MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'web-1'."
        assert (p["priority"], p["sourceAddressPrefix"], p["destinationAddressPrefix"], p["destinationPortRange"]) == (100, "127.0.0.1", "10.1.0.4", "22")
        assert p["direction"] == "Inbound"
    policy = security.jit_network_access_policies.get("rg-web", "westeurope", "default")
    assert policy.requests[0].virtual_machines[0].ports[0].status == "Initiated"
    assert sim.stats()["by_operation"]["POST initiate"] == 1


def test_initiate_raw_shape(arm):
    put_web1(arm)
    r = arm.policy("POST", initiate_body(("web-1", [{"number": 3389, "endTimeUtc": end(), "allowedSourceAddressPrefix": "10.0.0.0/8"}])), action="/initiate")
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"virtualMachines", "startTimeUtc", "requestor", "justification"}
    assert set(body["virtualMachines"][0]["ports"][0]) == {"number", "allowedSourceAddressPrefix", "endTimeUtc", "status", "statusReason"}
    assert body["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"] == "10.0.0.0/8"


def test_a_source_inside_the_policy_prefix_is_refused_unless_armsim_is_told_azure_accepts_it(arm, sim):
    """initiate_source_rule: exact (default, MicrosoftDocs/azure-docs#53026) or subset."""
    put_web1(arm)  # port 3389 allows 10.0.0.0/8
    inside = initiate_body(("web-1", [{"number": 3389, "endTimeUtc": end(), "allowedSourceAddressPrefix": "10.1.2.3"}]))
    r = arm.policy("POST", inside, action="/initiate")
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidInitiateInput"
    assert "not a subset of policy" in r.json()["error"]["message"] and "is not one of the allowed source address prefixes" in r.json()["error"]["message"]
    same = initiate_body(("web-1", [{"number": 3389, "endTimeUtc": end(), "allowedSourceAddressPrefix": "10.0.0.0/8"}]))
    assert arm.policy("POST", same, action="/initiate").status_code == 202
    assert sim.config(initiate_source_rule="subset")["initiate_source_rule"] == "subset"
    assert arm.policy("POST", inside, action="/initiate").status_code == 202
    outside = initiate_body(("web-1", [{"number": 3389, "endTimeUtc": end(), "allowedSourceAddressPrefix": "11.1.2.3"}]))
    assert arm.policy("POST", outside, action="/initiate").status_code == 400
    with pytest.raises(Exception, match="initiate_source_rule"):
        sim.config(initiate_source_rule="loose")


@pytest.mark.parametrize(
    ("vms", "status", "code"),
    [  # "endTimeUtc": minutes from now (computed when the test runs)
        ([("win-1", [{"number": 22, "endTimeUtc": 60}])], 400, "InvalidInitiateInput"),
        ([("web-1", [{"number": 80, "endTimeUtc": 60}])], 400, "InvalidInitiateInput"),
        ([("web-1", [{"number": 22, "endTimeUtc": 181}])], 400, "InvalidInitiateInput"),
        ([("web-1", [{"number": 22, "endTimeUtc": -1}])], 400, "InvalidInitiateInput"),
        ([("web-1", [{"number": 22}])], 400, "InvalidRequestContent"),  # endTimeUtc is required by the contract
        ([("web-1", [{"number": 3389, "endTimeUtc": 60, "allowedSourceAddressPrefix": "1.2.3.4"}])], 400, "InvalidInitiateInput"),
        ([("web-1", [{"number": 3389, "endTimeUtc": 60}])], 400, "InvalidInitiateInput"),  # caller 127.0.0.1 not in 10.0.0.0/8
        ([("web-1", [{"number": 22, "endTimeUtc": 60, "allowedSourceAddressPrefix": "2001:db8::1"}])], 400, "InvalidInitiateInput"),
        ([("web-1", [{"number": 22, "endTimeUtc": 60}, {"number": 22, "endTimeUtc": 60}])], 400, "InvalidInitiateInput"),
        ([], 400, "InvalidInitiateInput"),
    ],
)
def test_initiate_validation(arm, vms, status, code):
    put_web1(arm)
    vms = [(name, [{**p, "endTimeUtc": end(p["endTimeUtc"])} if "endTimeUtc" in p else p for p in ports]) for name, ports in vms]
    r = arm.policy("POST", initiate_body(*vms), action="/initiate")
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert arm.policy("GET").json()["properties"]["requests"] == []
    assert jit_rules(arm, "nsg-web-1", "Allow") == []


def test_initiate_messages(arm):
    put_web1(arm)
    r = arm.policy("POST", initiate_body(("web-1", [{"number": 80, "endTimeUtc": end()}])), action="/initiate")
    assert "The given access request is not a subset of policy" in r.json()["error"]["message"]
    r = arm.policy("POST", initiate_body(("web-1", [{"number": 22, "endTimeUtc": end()}])), action="/initiate", name="nope")
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("extra", "member"),
    [({"duration": "PT1H"}, "duration"), ({"allowedSourceAddressPrefixes": ["10.1.2.3"]}, "allowedSourceAddressPrefixes")],
)
def test_initiate_refuses_members_the_spec_lacks(arm, extra, member):
    """JitNetworkAccessPolicyInitiatePort has number, allowedSourceAddressPrefix and endTimeUtc only."""
    put_web1(arm)
    r = arm.policy("POST", initiate_body(("web-1", [dict({"number": 22, "endTimeUtc": end()}, **extra)])), action="/initiate")
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"
    assert f"Could not find member '{member}' on object of type 'JitNetworkAccessPolicyInitiatePort'" in r.json()["error"]["message"]
    assert "ports[0]" in r.json()["error"]["message"]


def test_apply_delay(arm, sim):
    sim.config(apply_delay=0.5)
    put_web1(arm)
    started = time.monotonic()
    assert arm.policy("POST", initiate_body(("web-1", [{"number": 22, "endTimeUtc": end()}])), action="/initiate").status_code == 202
    assert jit_rules(arm, "nsg-web-1", "Allow") == []
    assert wait_for(lambda: jit_rules(arm, "nsg-web-1", "Allow"), 5)
    assert 0.4 < time.monotonic() - started < 3


def test_supersession(arm):
    put_web1(arm)
    for src in ("1.1.1.1", "2.2.2.2"):
        body = initiate_body(("web-1", [{"number": 22, "endTimeUtc": end(), "allowedSourceAddressPrefix": src}]))
        assert arm.policy("POST", body, action="/initiate").status_code == 202
    requests_ = arm.policy("GET").json()["properties"]["requests"]
    first, second = (r["virtualMachines"][0]["ports"][0] for r in requests_)
    assert (first["status"], first["statusReason"]) == ("Revoked", "NewerRequestInitiated")
    assert (second["status"], second["statusReason"]) == ("Initiated", "UserRequested")
    for nsg in ("nsg-web-1", "nsg-web"):
        [allow] = jit_rules(arm, nsg, "Allow")
        assert allow["properties"]["sourceAddressPrefix"] == "2.2.2.2"


def test_expiry_by_clock(arm, sim):
    put_web1(arm)
    body = initiate_body(("web-1", [{"number": 22, "endTimeUtc": end(60), "allowedSourceAddressPrefix": "1.1.1.1"}]))
    arm.policy("POST", body, action="/initiate")
    assert len(jit_rules(arm, "nsg-web-1", "Allow")) == 1
    sim.advance(1800)
    assert len(jit_rules(arm, "nsg-web-1", "Allow")) == 1
    sim.advance(1801)
    assert jit_rules(arm, "nsg-web-1", "Allow") == []
    assert len(jit_rules(arm, "nsg-web-1", "Deny")) == 1
    p = arm.policy("GET").json()["properties"]["requests"][0]["virtualMachines"][0]["ports"][0]
    assert (p["status"], p["statusReason"]) == ("Revoked", "Expired")


def test_expiry_lazily_in_real_time(arm):
    put_web1(arm)
    arm.policy("POST", initiate_body(("web-1", [{"number": 22, "endTimeUtc": end(1.2 / 60)}])), action="/initiate")
    assert len(jit_rules(arm, "nsg-web", "Allow")) == 1
    deadline = time.monotonic() + 30  # armsim's clock runs in real time too: poll until the end has passed
    while jit_rules(arm, "nsg-web", "Allow"):
        assert time.monotonic() < deadline, "a 1.2-second request still had its rule 30 s later"
        time.sleep(0.1)
    assert arm.policy("GET").json()["properties"]["requests"][0]["virtualMachines"][0]["ports"][0]["statusReason"] == "Expired"


def test_policy_changes_remove_allow_rules(arm):
    put_web1(arm, [port(22), port(5985)])
    body = initiate_body(("web-1", [{"number": 22, "endTimeUtc": end()}, {"number": 5985, "endTimeUtc": end()}]))
    assert arm.policy("POST", body, action="/initiate").status_code == 202
    assert sorted(r["properties"]["priority"] for r in jit_rules(arm, "nsg-web-1", "Allow")) == [100, 101]
    put_web1(arm, [port(22)])
    assert [r["properties"]["destinationPortRange"] for r in jit_rules(arm, "nsg-web-1", "Allow")] == ["22"]
    arm.policy("DELETE")
    assert rules(arm, "nsg-web-1") == []


def test_initiate_error_via_sdk(arm, clients):
    put_web1(arm)
    req = m.JitNetworkAccessPolicyInitiateRequest(
        virtual_machines=[
            m.JitNetworkAccessPolicyInitiateVirtualMachine(
                id=vm_id("rg-web", "web-1"), ports=[m.JitNetworkAccessPolicyInitiatePort(number=22, end_time_utc=datetime.now(UTC) + timedelta(hours=5))]
            )
        ]
    )
    with pytest.raises(HttpResponseError) as exc:
        clients[1].jit_network_access_policies.initiate("rg-web", "westeurope", "default", req)
    assert exc.value.status_code == 400 and exc.value.error.code == "InvalidInitiateInput"


def test_a_policy_write_restores_deleted_deny_rules_after_the_deny_delay(arm, sim):
    """An IaC tool deleted JIT's deny rule; writing the policy again (unchanged) brings it back, after
    ``deny_apply_delay`` when set (Defender applies a policy asynchronously)."""
    put_web1(arm)
    (deny,) = jit_rules(arm, "nsg-web", "Deny")
    path = f"{NET}/nsg-web/securityRules/{deny['name']}"
    assert arm.call("DELETE", path).status_code in (200, 202)
    wait_for(lambda: not jit_rules(arm, "nsg-web", "Deny"))
    sim.config(deny_apply_delay=3)
    put_web1(arm)
    assert jit_rules(arm, "nsg-web", "Deny") == []  # not yet: the write was accepted, the rules follow
    wait_for(lambda: len(jit_rules(arm, "nsg-web", "Deny")) == 1, timeout=30)
    (back,) = jit_rules(arm, "nsg-web", "Deny")
    assert back["properties"]["destinationPortRanges"] == deny["properties"]["destinationPortRanges"]
    sim.reset()
    assert sim.config()["deny_apply_delay"] == 0  # reset restores the synchronous default
