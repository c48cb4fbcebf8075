"""Microsoft.Network through the real SDK and raw HTTPS: NSGs, rules, LROs, etags, validation."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from simtest import NET_API, SUB, wait_for

RG = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network"
NSG = RG + "/networkSecurityGroups/nsg-web"


def rule(priority=500, port="8080", **extra):
    props = {
        "protocol": "Tcp",
        "access": "Allow",
        "direction": "Inbound",
        "priority": priority,
        "sourceAddressPrefix": "*",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": port,
    }
    props.update(extra)
    return {"properties": props}


def test_sdk_reads(clients):
    _, _, network, _ = clients
    names = {n.name for n in network.network_security_groups.list_all()}
    assert {"nsg-web", "nsg-web-1", "nsg-open", "nsg-db"} <= names
    assert {n.name for n in network.network_security_groups.list("rg-db")} == {"nsg-db"}
    nsg = network.network_security_groups.get("rg-web", "nsg-web")
    assert nsg.etag.startswith('W/"')
    assert [r.name for r in nsg.security_rules] == ["AllowHttps"]
    assert [r.priority for r in nsg.default_security_rules] == [65000, 65001, 65500, 65000, 65001, 65500]
    assert nsg.subnets[0].id.endswith("/virtualNetworks/vnet-web/subnets/default")
    r = network.security_rules.get("rg-web", "nsg-web", "AllowHttps")
    assert (r.priority, r.destination_port_range, r.destination_port_ranges) == (300, "443", [])
    nic = network.network_interfaces.get("rg-web", "web-1-nic")
    assert nic.ip_configurations[0].private_ip_address == "10.1.0.4"
    assert nic.network_security_group.id.endswith("/nsg-web-1")
    assert nic.virtual_machine.id.endswith("/virtualMachines/web-1")
    assert len(list(network.network_interfaces.list_all())) == 6
    vnet = network.virtual_networks.get("rg-web", "vnet-web")
    assert vnet.address_space.address_prefixes == ["10.1.0.0/16"]
    assert network.subnets.get("rg-web", "vnet-web", "default").network_security_group.id.endswith("/nsg-web")
    assert [s.name for s in network.subnets.list("rg-web", "vnet-web")] == ["default", "plain"]
    pips = list(network.public_ip_addresses.list_all())
    assert len(pips) == 1 and pips[0].ip_address and pips[0].ip_configuration.id.startswith(nic.id)
    assert network.public_ip_addresses.get("rg-web", pips[0].name).ip_address == pips[0].ip_address
    assert [p.name for p in network.public_ip_addresses.list("rg-web")] == [pips[0].name]


def test_not_found_shapes(arm, clients):
    r = arm.call("GET", RG + "/networkSecurityGroups/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
    r = arm.call("GET", f"/subscriptions/{SUB}/resourceGroups/rg-nope/providers/Microsoft.Network/networkSecurityGroups")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError):
        clients[2].network_security_groups.get("rg-web", "nope")
    r = arm.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/unknownThings")
    assert r.status_code == 404
    r = arm.call("PUT", RG + "/networkInterfaces/web-1-nic", {"location": "westeurope"})
    assert r.status_code == 501


def test_sdk_rule_create_update_delete(clients, sim):
    _, _, network, _ = clients
    before = network.network_security_groups.get("rg-web", "nsg-web").etag
    created = network.security_rules.begin_create_or_update("rg-web", "nsg-web", "AllowApp", rule()).result()
    assert created.name == "AllowApp" and created.priority == 500 and created.provisioning_state == "Succeeded"
    after = network.network_security_groups.get("rg-web", "nsg-web")
    assert after.etag != before and created.etag == after.etag
    network.security_rules.begin_delete("rg-web", "nsg-web", "AllowApp").result()
    names = [r.name for r in network.security_rules.list("rg-web", "nsg-web")]
    assert names == ["AllowHttps"]
    ops = sim.stats()["by_operation"]
    assert ops["PUT securityRules"] == 1 and ops["DELETE securityRules"] == 1 and ops["GET operations"] >= 2


def test_rule_lro_protocol_raw(arm):
    r = arm.call("PUT", NSG + "/securityRules/AllowApp", rule())
    assert r.status_code == 201
    assert r.json()["properties"]["provisioningState"] == "Updating"
    assert r.headers["Retry-After"] == "1"
    op = r.headers["Azure-AsyncOperation"]
    assert op.startswith(arm.base + f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope/operations/") and "api-version=" in op
    assert arm.call("GET", op).json() == {"status": "InProgress"}
    assert wait_for(lambda: arm.call("GET", op).json()["status"] == "Succeeded", 3)
    r = arm.call("PUT", NSG + "/securityRules/AllowApp", rule(port="8081"))
    assert r.status_code == 200 and r.json()["properties"]["destinationPortRange"] == "8081"
    r = arm.call("DELETE", NSG + "/securityRules/AllowApp")
    assert r.status_code == 202 and r.content == b""
    location = r.headers["Location"]
    assert "/operationResults/" in location and r.headers["Azure-AsyncOperation"]
    assert arm.call("GET", location).status_code == 202
    assert wait_for(lambda: arm.call("GET", location).status_code == 204, 3)
    assert arm.call("DELETE", NSG + "/securityRules/AllowApp").status_code == 204  # already gone


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"priority": 99}, "SecurityRuleInvalidPriority"),
        ({"priority": 4097}, "SecurityRuleInvalidPriority"),
        ({"priority": 300}, "SecurityRuleConflict"),
        ({"description": "x" * 141}, "SecurityRuleDescriptionTooLong"),
        ({"destinationPortRange": "70000"}, "SecurityRuleInvalidPortRange"),
        ({"destinationPortRange": "any"}, "SecurityRuleInvalidPortRange"),
        ({"sourceAddressPrefix": "any"}, "SecurityRuleInvalidAddressPrefix"),
        ({"sourceAddressPrefix": "10.0.0.300"}, "SecurityRuleInvalidAddressPrefix"),
        ({"protocol": "Gre"}, "SecurityRuleInvalidProtocol"),
        ({"access": "Maybe"}, "SecurityRuleInvalidAccess"),
        ({"direction": "Sideways"}, "SecurityRuleInvalidDirection"),
        ({"destinationPortRanges": ["22", "23"]}, "SecurityRuleParameterContainsMultipleValues"),
    ],
)
def test_rule_validation(arm, props, code):
    r = arm.call("PUT", NSG + "/securityRules/Bad", rule(**props))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert arm.call("GET", NSG + "/securityRules/Bad").status_code == 404


def test_priority_unique_per_direction(arm):
    assert arm.call("PUT", NSG + "/securityRules/Out300", rule(priority=300, direction="Outbound")).status_code == 201
    assert arm.call("PUT", NSG + "/securityRules/Description140", rule(priority=301, description="d" * 140)).status_code == 201


def test_sdk_validation_error_surfaces(clients):
    with pytest.raises(HttpResponseError) as exc:
        clients[2].security_rules.begin_create_or_update("rg-web", "nsg-web", "Clash", rule(priority=300)).result()
    assert exc.value.status_code == 400 and "SecurityRuleConflict" in str(exc.value)


def test_if_match(arm):
    etag = arm.call("GET", NSG).json()["etag"]
    r = arm.call("PUT", NSG + "/securityRules/A", rule(), headers={"If-Match": 'W/"00000000-0000-0000-0000-000000000000"'})
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
    nsg = arm.call("GET", NSG).json()
    assert nsg["etag"] == etag  # unchanged by the refused write
    nsg["properties"]["securityRules"].append({"name": "B", **rule(priority=501)})
    assert arm.call("PUT", NSG, nsg, headers={"If-Match": '"stale"'}).status_code == 412
    r = arm.call("PUT", NSG, nsg, headers={"If-Match": etag})
    assert r.status_code == 200 and r.headers["Azure-AsyncOperation"]
    new_etag = arm.call("GET", NSG).json()["etag"]
    assert new_etag != etag
    assert arm.call("DELETE", NSG + "/securityRules/B", headers={"If-Match": etag}).status_code == 412
    assert arm.call("DELETE", NSG + "/securityRules/B", headers={"If-Match": new_etag}).status_code == 202
    assert arm.call("PUT", RG + "/networkSecurityGroups/nsg-new", {"location": "westeurope"}, headers={"If-Match": "*"}).status_code == 412
    assert arm.call("PUT", NSG, nsg, headers={"If-None-Match": "*"}).status_code == 412


def test_nsg_put_replaces_rules_and_delete(arm, clients):
    _, _, network, _ = clients
    nsg = network.network_security_groups.begin_create_or_update(
        "rg-web", "nsg-new", {"location": "westeurope", "tags": {"a": "b"}, "properties": {"securityRules": [{"name": "R1", **rule()}]}}
    ).result()
    assert nsg.name == "nsg-new" and [r.name for r in nsg.security_rules] == ["R1"] and nsg.tags == {"a": "b"}
    r = arm.call("PUT", RG + "/networkSecurityGroups/nsg-new", {"location": "westeurope", "properties": {"securityRules": []}})
    assert r.status_code == 200 and r.json()["properties"]["securityRules"] == []
    assert arm.call("PUT", RG + "/networkSecurityGroups/nsg-x", {"properties": {}}).json()["error"]["code"] == "LocationRequired"
    dup = {"location": "westeurope", "properties": {"securityRules": [{"name": "R1", **rule()}, {"name": "R2", **rule()}]}}
    assert arm.call("PUT", RG + "/networkSecurityGroups/nsg-x", dup).json()["error"]["code"] == "SecurityRuleConflict"
    network.network_security_groups.begin_delete("rg-web", "nsg-new").result()
    assert "nsg-new" not in {n.name for n in network.network_security_groups.list("rg-web")}
    r = arm.call("DELETE", NSG)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InUseNetworkSecurityGroupCannotBeDeleted"


def test_update_tags(clients):
    nsg = clients[2].network_security_groups.update_tags("rg-web", "nsg-spare", {"tags": {"owner": "me"}})
    assert nsg.tags == {"owner": "me"}


def test_lro_failed_fault(sim, clients):
    _, _, network, _ = clients
    sim.fault(kind="lro_failed", method="PUT", path_contains="securityRules/Doomed", code="InternalServerError", message="boom")
    with pytest.raises(HttpResponseError) as exc:
        network.security_rules.begin_create_or_update("rg-web", "nsg-web", "Doomed", rule()).result()
    assert "boom" in str(exc.value)
    assert "Doomed" not in [r.name for r in network.security_rules.list("rg-web", "nsg-web")]
    assert sim.admin("GET", "/faults") == []


def test_paging(arm, sim, clients):
    sim.config(page_size=2)
    first = arm.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/networkSecurityGroups").json()
    assert len(first["value"]) == 2
    next_link = first["nextLink"]
    assert next_link.startswith(arm.base + "/subscriptions/") and f"api-version={NET_API}" in next_link and "skiptoken" in next_link
    seen = [n["name"] for n in first["value"]]
    while next_link:
        page = arm.call("GET", next_link, api=None).json()
        seen += [n["name"] for n in page["value"]]
        next_link = page.get("nextLink")
    assert len(seen) == len(set(seen)) == 5
    assert len(list(clients[2].network_security_groups.list_all())) == 5
    assert len(list(clients[2].network_interfaces.list_all())) == 6
    assert len(list(clients[3].virtual_machines.list_all())) == 6
    assert sim.stats()["by_operation"]["GET virtualMachines"] == 3


def test_headers(arm):
    r = arm.call("GET", NSG, headers={"x-ms-client-request-id": "abc", "x-ms-correlation-request-id": "corr-1"})
    assert r.headers["x-ms-client-request-id"] == "abc"
    assert r.headers["x-ms-correlation-request-id"] == "corr-1"
    assert len(r.headers["x-ms-request-id"]) == 36
    assert int(r.headers["x-ms-ratelimit-remaining-subscription-reads"]) > 11000
    w = arm.call("PUT", NSG + "/securityRules/A", rule())
    assert int(w.headers["x-ms-ratelimit-remaining-subscription-writes"]) > 1000
