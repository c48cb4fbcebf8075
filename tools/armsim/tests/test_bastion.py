"""Bastion hosts and VNet peerings through the real SDK and raw HTTPS: shapes, states, validation."""

import pytest
from azure.core.exceptions import HttpResponseError
from simtest import CLIENT_ID, SECRET, SUB, TENANT, Arm

from armsim.seed import SeedError, build_states
from armsim.testing import ArmSim

NET = f"/subscriptions/{SUB}/resourceGroups/rg-hub/providers/Microsoft.Network"
HUB = NET + "/virtualNetworks/vnet-hub"
SPOKE = f"/subscriptions/{SUB}/resourceGroups/rg-spoke/providers/Microsoft.Network/virtualNetworks/vnet-spoke"

SEED = {
    "subscription_id": SUB,
    "tenant_id": TENANT,
    "principals": [{"client_id": CLIENT_ID, "client_secret": SECRET, "name": "ansible-ci"}],
    "resource_groups": [
        {
            "name": "rg-hub",
            "virtual_networks": [
                {
                    "name": "vnet-hub",
                    "address_space": "10.0.0.0/16",
                    "subnets": [{"name": "AzureBastionSubnet", "prefix": "10.0.1.0/26"}, {"name": "shared", "prefix": "10.0.2.0/24"}],
                    "peerings": [{"name": "hub-to-spoke", "remote": "rg-spoke/vnet-spoke"}],
                },
                {"name": "vnet-lone", "address_space": "10.9.0.0/16", "subnets": [{"name": "AzureBastionSubnet", "prefix": "10.9.0.0/26"}]},
            ],
            "bastion_hosts": [{"name": "bas-hub", "virtual_network": "vnet-hub"}],
        },
        {
            "name": "rg-spoke",
            "virtual_networks": [
                {
                    "name": "vnet-spoke",
                    "address_space": "10.1.0.0/16",
                    "subnets": [{"name": "default", "prefix": "10.1.0.0/24"}],
                    "peerings": [{"name": "spoke-to-hub", "remote": "rg-hub/vnet-hub"}, {"name": "spoke-to-lone", "remote": "rg-hub/vnet-lone"}],
                }
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def sim():
    with ArmSim(SEED, extra_args=("--lro-in-progress", "0")) as s:
        yield s


@pytest.fixture(autouse=True)
def _fresh(sim):
    sim.reset()


@pytest.fixture
def arm(sim):
    return Arm(sim)


def bastion_body(subnet_id, location="westeurope"):
    config = {"name": "IpConf", "properties": {"subnet": {"id": subnet_id}}}
    return {"location": location, "sku": {"name": "Standard"}, "properties": {"ipConfigurations": [config]}}


def test_seeded_bastion_and_peerings_through_the_sdk(sim):
    _, _, network, _ = sim.sdk_clients()
    hosts = list(network.bastion_hosts.list())
    assert [h.name for h in hosts] == ["bas-hub"]
    assert hosts[0].ip_configurations[0].subnet.id == HUB + "/subnets/AzureBastionSubnet"
    assert hosts[0].provisioning_state == "Succeeded" and hosts[0].sku.name == "Standard"
    assert [h.name for h in network.bastion_hosts.list_by_resource_group("rg-hub")] == ["bas-hub"]
    assert list(network.bastion_hosts.list_by_resource_group("rg-spoke")) == []
    assert network.bastion_hosts.get("rg-hub", "bas-hub").id == NET + "/bastionHosts/bas-hub"
    # hub <-> spoke peer both ways: Connected; spoke -> lone has no way back: Initiated
    states = {p.name: p.peering_state for p in network.virtual_network_peerings.list("rg-spoke", "vnet-spoke")}
    assert states == {"spoke-to-hub": "Connected", "spoke-to-lone": "Initiated"}
    hub = network.virtual_networks.get("rg-hub", "vnet-hub")
    assert [(p.name, p.peering_state, p.remote_virtual_network.id) for p in hub.virtual_network_peerings] == [("hub-to-spoke", "Connected", SPOKE)]
    assert hub.virtual_network_peerings[0].remote_address_space.address_prefixes == ["10.1.0.0/16"]
    subnet = network.subnets.get("rg-hub", "vnet-hub", "AzureBastionSubnet")
    assert [c.id for c in subnet.ip_configurations] == [NET + "/bastionHosts/bas-hub/bastionHostIpConfigurations/IpConf"]


def test_bastion_put_get_delete(sim, arm):
    _, _, network, _ = sim.sdk_clients()
    body = bastion_body(NET + "/virtualNetworks/vnet-lone/subnets/AzureBastionSubnet")
    created = network.bastion_hosts.begin_create_or_update("rg-hub", "bas-lone", body).result()
    assert created.provisioning_state == "Succeeded"
    assert sorted(h.name for h in network.bastion_hosts.list()) == ["bas-hub", "bas-lone"]
    state = sim.state()
    assert sorted(h["name"] for h in state["bastion_hosts"]) == ["bas-hub", "bas-lone"]
    network.bastion_hosts.begin_delete("rg-hub", "bas-lone").result()
    assert [h.name for h in network.bastion_hosts.list()] == ["bas-hub"]
    assert arm.call("GET", NET + "/bastionHosts/bas-lone").json()["error"]["code"] == "ResourceNotFound"
    assert arm.call("DELETE", NET + "/bastionHosts/bas-lone").status_code == 204


@pytest.mark.parametrize(
    ("subnet", "code"),
    [
        (HUB + "/subnets/shared", "SubnetNameMustBeAzureBastionSubnet"),
        (HUB + "/subnets/azurebastionsubnet-nope", "InvalidResourceReference"),
        (NET + "/virtualNetworks/vnet-none/subnets/AzureBastionSubnet", "InvalidResourceReference"),
    ],
)
def test_bastion_subnet_must_be_an_azure_bastion_subnet(sim, arm, subnet, code):
    before = sim.stats()["writes"]
    r = arm.call("PUT", NET + "/bastionHosts/bas-bad", bastion_body(subnet))
    assert r.status_code == 400 and r.json()["error"]["code"] == code
    assert subnet in r.json()["error"]["message"]
    assert [h["name"] for h in sim.state()["bastion_hosts"]] == ["bas-hub"]
    assert sim.stats()["writes"] == before + 1  # the refused PUT counts, nothing was created


def test_bastion_wrong_region_and_contract(arm):
    r = arm.call("PUT", NET + "/bastionHosts/bas-far", bastion_body(NET + "/virtualNetworks/vnet-lone/subnets/AzureBastionSubnet", "eastus"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidResourceReference"
    r = arm.call("PUT", NET + "/bastionHosts/bas-x", {"location": "westeurope", "properties": {"ipConfigurationz": []}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestFormat"


def test_peering_becomes_connected_when_the_remote_peers_back(sim, arm):
    _, _, network, _ = sim.sdk_clients()
    lone = NET + "/virtualNetworks/vnet-lone"
    assert network.virtual_network_peerings.get("rg-spoke", "vnet-spoke", "spoke-to-lone").peering_state == "Initiated"
    body = {"properties": {"remoteVirtualNetwork": {"id": SPOKE}}}
    back = network.virtual_network_peerings.begin_create_or_update("rg-hub", "vnet-lone", "lone-to-spoke", body).result()
    assert back.peering_state == "Connected" and back.allow_virtual_network_access is True
    assert network.virtual_network_peerings.get("rg-spoke", "vnet-spoke", "spoke-to-lone").peering_state == "Connected"
    lone_json = next(v for v in sim.state()["virtual_networks"] if v["id"] == lone)
    assert [p["properties"]["peeringState"] for p in lone_json["properties"]["virtualNetworkPeerings"]] == ["Connected"]
    network.virtual_network_peerings.begin_delete("rg-hub", "vnet-lone", "lone-to-spoke").result()
    assert network.virtual_network_peerings.get("rg-spoke", "vnet-spoke", "spoke-to-lone").peering_state == "Disconnected"
    assert arm.call("GET", lone + "/virtualNetworkPeerings/lone-to-spoke").status_code == 404


def test_peering_validation(arm):
    r = arm.call("PUT", HUB + "/virtualNetworkPeerings/p", {"properties": {"remoteVirtualNetwork": {"id": NET + "/virtualNetworks/nope"}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidResourceReference"
    r = arm.call("PUT", HUB + "/virtualNetworkPeerings/p", {"properties": {"remoteVirtualNetwork": {"id": HUB}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "CannotPeerVirtualNetworkWithItself"
    r = arm.call("PUT", HUB + "/virtualNetworkPeerings/p", {"properties": {"allowForwardedTraffic": True}})
    assert r.status_code == 400 and "remoteVirtualNetwork" in r.json()["error"]["message"]


def test_seed_errors():
    bad = {"resource_groups": [{"name": "rg", "virtual_networks": [{"name": "v", "subnets": [{"name": "default", "prefix": "10.0.0.0/24"}]}]}]}
    bad["resource_groups"][0]["bastion_hosts"] = [{"name": "b", "subnet": "v/default"}]
    with pytest.raises(SeedError, match="AzureBastionSubnet"):
        build_states(bad, 0)
    bad["resource_groups"][0]["bastion_hosts"] = []
    bad["resource_groups"][0]["virtual_networks"][0]["peerings"] = [{"remote": "rg/missing"}]
    with pytest.raises(SeedError, match="unknown remote virtual network"):
        build_states(bad, 0)


def test_sdk_refuses_through_http_error(sim):
    _, _, network, _ = sim.sdk_clients()
    with pytest.raises(HttpResponseError, match="SubnetNameMustBeAzureBastionSubnet"):
        network.bastion_hosts.begin_create_or_update("rg-hub", "bas-x", bastion_body(HUB + "/subnets/shared")).result()
