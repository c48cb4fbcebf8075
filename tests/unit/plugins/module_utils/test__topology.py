"""VM -> NIC -> subnet -> NSG joins from bulk list results (REST shapes, as the SDK returns them)."""

import pytest
from fakes import SUB, resource_group_id, vm_id

from ansible_collections.jitaccess.azure.plugins.module_utils import _topology
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError

NET = resource_group_id() + "/providers/Microsoft.Network"


def vm(name, nics, os_type="Linux", power="running"):
    return {
        "id": vm_id(name),
        "name": name,
        "location": "West Europe",
        "tags": {"env": "prod"},
        "properties": {
            "storageProfile": {"osDisk": {"osType": os_type}},
            "networkProfile": {"networkInterfaces": [{"id": NET + "/networkInterfaces/" + nic} for nic in nics]},
            "instanceView": {"statuses": [{"code": "ProvisioningState/succeeded"}, {"code": "PowerState/" + power}]},
        },
    }


def nic(name, subnet, ip, nsg=None, public_ip=None):
    config = {"primary": True, "privateIPAddress": ip, "subnet": {"id": NET + "/virtualNetworks/vnet/subnets/" + subnet}}
    if public_ip:
        config["publicIPAddress"] = {"id": NET + "/publicIPAddresses/" + public_ip}
    props = {"ipConfigurations": [{"name": "ipconfig1", "properties": config}]}
    if nsg:
        props["networkSecurityGroup"] = {"id": NET + "/networkSecurityGroups/" + nsg}
    return {"id": NET + "/networkInterfaces/" + name, "name": name, "properties": props}


INVENTORY = _topology.Inventory(
    virtual_machines=[
        vm("both", ["nic-both"]),
        vm("nic-only", ["nic-nic"], os_type="Windows", power="deallocated"),
        vm("bare", ["nic-bare"]),
        vm("no-nic", []),
    ],
    network_interfaces=[
        nic("nic-both", "guarded", "10.1.0.4", nsg="nsg-nic", public_ip="pip-1"),
        nic("nic-nic", "open", "10.1.1.4", nsg="nsg-nic"),
        nic("nic-bare", "open", "10.1.1.5"),
    ],
    virtual_networks=[
        {
            "id": NET + "/virtualNetworks/vnet",
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [
                    {
                        "id": NET + "/virtualNetworks/vnet/subnets/guarded",
                        "properties": {"networkSecurityGroup": {"id": NET + "/networkSecurityGroups/nsg-subnet"}},
                    },
                    {"id": NET + "/virtualNetworks/vnet/subnets/open", "properties": {}},
                ],
            },
        }
    ],
    public_ip_addresses=[{"id": NET + "/publicIPAddresses/PIP-1", "properties": {"ipAddress": "20.1.2.3"}}],
)


def test_paths_list_subnet_nsg_first_and_flag_unsupported():
    topology = _topology.build_topology(INVENTORY)
    both = topology[vm_id("both").lower()]
    assert both["location"] == "westeurope"
    assert both["resource_group"] == "rg-web"
    assert both["power_state"] == "running"
    assert both["os_type"] == "Linux"
    assert [n.rsplit("/", 1)[1] for n in both["nsg_ids"]] == ["nsg-subnet", "nsg-nic"]
    assert both["nics"][0]["public_ip"] == "20.1.2.3"  # joined case-insensitively
    assert both["nics"][0]["vnet_address_prefixes"] == ["10.1.0.0/16"]
    assert both["unsupported_reason"] is None

    by_name = {record["name"]: record for record in topology.values()}
    assert by_name["nic-only"]["power_state"] == "deallocated"
    assert [n.rsplit("/", 1)[1] for n in by_name["nic-only"]["nsg_ids"]] == ["nsg-nic"]
    assert by_name["bare"]["unsupported_reason"] == _topology.UNSUPPORTED_NO_NSG
    assert by_name["no-nic"]["unsupported_reason"] == _topology.UNSUPPORTED_NO_NIC
    assert by_name["no-nic"]["os_type"] == "Linux"


def test_resolve_by_name_or_id_reports_all_unknown_and_duplicates():
    topology = _topology.build_topology(INVENTORY)
    resolved = _topology.resolve_vms([{"name": "BOTH", "resource_group": "RG-WEB"}, {"id": vm_id("bare")}], topology, SUB)
    assert [record["name"] for dummy, record in resolved] == ["both", "bare"]
    with pytest.raises(JitValidationError, match="not found in subscription .*: .*/ghost1, .*/ghost2"):
        _topology.resolve_vms([{"name": "ghost1", "resource_group": "rg-web"}, {"name": "ghost2", "resource_group": "rg-web"}], topology, SUB)
    with pytest.raises(JitValidationError, match="listed twice"):
        _topology.resolve_vms(
            [
                {"name": "both", "resource_group": "rg-web"},
                {"id": vm_id("both").upper().replace("SUBSCRIPTIONS", "subscriptions")},
            ],
            topology,
            SUB,
        )


def test_nsgs_by_id_is_case_insensitive():
    inventory = _topology.Inventory(network_security_groups=[{"id": NET + "/networkSecurityGroups/NSG-A"}])
    assert list(_topology.nsgs_by_id(inventory)) == [(NET + "/networkSecurityGroups/nsg-a").lower()]


SUB2 = "00000000-0000-0000-0000-000000000002"


def test_subscriptions_come_from_vm_ids_in_first_seen_order():
    ids = [
        vm_id("x", rg="a", sub=SUB2),
        vm_id("y"),
        vm_id("z", rg="b", sub=SUB2.upper()),
    ]
    assert _topology.subscriptions_of(ids) == [SUB2, SUB]
    assert _topology.subscriptions_of([], SUB) == [SUB]
    assert _topology.subscriptions_of([]) == []
    assert _topology.not_found_message(ids[:1]) == "virtual machine(s) not found in subscription %s: %s" % (SUB2, ids[0])
    assert _topology.not_found_message(ids[:2]).startswith("virtual machine(s) not found in subscriptions %s, %s: " % (SUB2, SUB))


def test_read_inventory_lists_each_kind_once_per_subscription():
    class Api:
        subscription_id = SUB

        def __init__(self):
            self.calls = []

        def list_in_subscription(self, path, api_version, params=None, subscription_id=None):
            self.calls.append((subscription_id, path.rsplit("/", 1)[1]))
            return [{"id": "/subscriptions/%s/%s" % (subscription_id, path)}]

    api, actions = Api(), []

    def call(action, function):
        actions.append(action)
        return function()

    inventory = _topology.read_inventory(api, call, kinds=("virtual_machines", "network_interfaces"), subscriptions=[SUB, SUB2])
    assert api.calls == [(SUB, "virtualMachines"), (SUB, "networkInterfaces"), (SUB2, "virtualMachines"), (SUB2, "networkInterfaces")]
    assert len(inventory.virtual_machines) == 2 and len(inventory.network_interfaces) == 2
    assert actions[2] == "list virtual machines in subscription %s" % SUB2
    api.calls.clear()
    _topology.read_inventory(api, lambda action, function: function(), kinds=("virtual_machines",))
    assert api.calls == [(SUB, "virtualMachines")]  # default: the API's subscription
