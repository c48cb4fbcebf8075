"""VM -> NIC -> subnet -> NSG joins from bulk list results (REST shapes, as the SDK returns them)."""

import copy
import json
import os
import threading

import pytest
from fakes import SUB, resource_group_id, vm_id

from ansible_collections.jitaccess.azure.plugins.module_utils import _nsg, _topology
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

        def list_in_subscription(self, path, api_version, params=None, subscription_id=None, each=None):
            self.calls.append((subscription_id, path.rsplit("/", 1)[1]))
            return [{"id": "/subscriptions/%s/%s" % (subscription_id, path)}]

    api, actions = Api(), []

    def call(action, function):
        actions.append(action)
        return function()

    inventory = _topology.read_inventory(api, call, kinds=("virtual_machines", "network_interfaces"), subscriptions=[SUB, SUB2])
    # Listed side by side (any order), merged in a fixed one.
    assert sorted(api.calls) == sorted([(SUB, "virtualMachines"), (SUB, "networkInterfaces"), (SUB2, "virtualMachines"), (SUB2, "networkInterfaces")])
    assert [item["id"].split("/")[2] for item in inventory.virtual_machines] == [SUB, SUB2]
    assert len(inventory.virtual_machines) == 2 and len(inventory.network_interfaces) == 2
    assert actions[2] == "list virtual machines in subscription %s" % SUB2
    api.calls.clear()
    _topology.read_inventory(api, lambda action, function: function(), kinds=("virtual_machines",))
    assert api.calls == [(SUB, "virtualMachines")]  # default: the API's subscription


def test_a_saved_inventory_is_owner_only_and_reused_for_what_it_holds(tmp_path):
    path = str(tmp_path / "inventory.json")
    vm = {"id": "/subscriptions/%s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1" % SUB}
    other = {"id": "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"}
    _topology.save_inventory(path, _topology.Inventory(virtual_machines=[vm, other], network_interfaces=[]), [SUB.upper()], clock=lambda: 1000.0)
    assert os.stat(path).st_mode & 0o777 == 0o600
    reused, why = _topology.load_inventory(path, [SUB], ("virtual_machines", "network_interfaces", "network_security_groups"), clock=lambda: 1010.0)
    assert why is None
    assert reused.kinds == ("virtual_machines", "network_interfaces")  # NSGs were never saved: listed afresh
    assert reused.virtual_machines == [vm]  # only the subscriptions asked for


@pytest.mark.parametrize(
    ("content", "now", "subscriptions", "reason"),
    [
        (None, 1010.0, [SUB], "cannot read"),
        ("not json", 1010.0, [SUB], "cannot read"),
        ('{"format": "other"}', 1010.0, [SUB], "is not an inventory saved by nsg_jit_facts"),
        ("saved", 1000.0 + 3601, [SUB], "was saved 3601 s ago (reused for at most 3600 s)"),
        ("saved", 1010.0, ["22222222-2222-2222-2222-222222222222"], "does not cover subscription(s) 22222222-2222-2222-2222-222222222222"),
    ],
)
def test_an_unusable_inventory_file_says_why(tmp_path, content, now, subscriptions, reason):
    path = str(tmp_path / "inventory.json")
    if content == "saved":
        _topology.save_inventory(path, _topology.Inventory(virtual_machines=[]), [SUB], clock=lambda: 1000.0)
    elif content is not None:
        (tmp_path / "inventory.json").write_text(content)
    reused, why = _topology.load_inventory(path, subscriptions, ("virtual_machines",), clock=lambda: now)
    assert reused is None and reason in why


def test_read_inventory_lists_only_what_the_reused_file_lacks():
    listed = []

    class Api:
        subscription_id = SUB

        def list_in_subscription(self, path, api_version, params, subscription_id=None, each=None):
            listed.append(path.rsplit("/", 1)[-1])
            return [{"id": "/subscriptions/%s/x/%s" % (SUB, path)}]

    reused = _topology.Inventory(virtual_machines=[{"id": "vm"}], network_interfaces=[])
    inventory = _topology.read_inventory(Api(), lambda _action, function: function(), reused=reused)
    assert sorted(listed) == ["networkSecurityGroups", "publicIPAddresses", "virtualNetworks"]
    assert inventory.virtual_machines == [{"id": "vm"}] and inventory.network_interfaces == []
    assert inventory.kinds == _topology.CORE_KINDS
    assert reused.virtual_machines == []  # moved, not copied: releasing the inventory frees the items


def test_listed_items_lose_only_members_never_read():
    vm = {
        "id": vm_id("web-1"),
        "type": "Microsoft.Compute/virtualMachines",
        "tags": {"a": "b"},
        "properties": {
            "osProfile": {"adminUsername": "x"},
            "storageProfile": {"osDisk": {"osType": "Linux"}},
            "networkProfile": {"networkInterfaces": [{"id": "nic"}]},
            "instanceView": {"statuses": [{"code": "PowerState/running", "displayStatus": "VM running", "time": "t"}], "vmAgent": {}},
        },
    }
    _topology._slim("virtual_machines")(vm)
    assert vm == {
        "id": vm_id("web-1"),
        "tags": {"a": "b"},
        "properties": {
            "storageProfile": {"osDisk": {"osType": "Linux"}},
            "networkProfile": {"networkInterfaces": [{"id": "nic"}]},
            "instanceView": {"statuses": [{"code": "PowerState/running"}]},
        },
    }
    assert _topology.power_state_of(vm) == "running"
    nsg = {
        "id": "n",
        "etag": "e",
        "type": "t",
        "properties": {
            "provisioningState": "S",
            "securityRules": [{"name": "r", "etag": "re", "type": "t", "properties": {"priority": 100, "provisioningState": "S"}}],
        },
    }
    _topology._slim("network_security_groups")(nsg)
    assert nsg == {"id": "n", "etag": "e", "properties": {"securityRules": [{"name": "r", "etag": "re", "properties": {"priority": 100}}]}}


def test_a_failed_list_fails_through_call_in_the_calling_thread_after_the_others_finish():
    import threading

    seen = []

    class Api:
        subscription_id = SUB

        def list_in_subscription(self, path, api_version, params=None, subscription_id=None, each=None):
            if path.endswith("networkInterfaces"):
                raise RuntimeError("boom")
            return []

    def call(action, function):
        seen.append((action, threading.current_thread() is threading.main_thread()))
        try:
            return function()
        except RuntimeError as exc:
            raise ValueError(action) from exc

    with pytest.raises(ValueError, match="list network interfaces"):
        _topology.read_inventory(Api(), call, kinds=("virtual_machines", "network_interfaces", "virtual_networks"))
    assert seen == [("list virtual machines", True), ("list network interfaces", True)]


def test_a_hub_in_another_subscription_is_listed_for_the_bastion_option():
    """The VMs' subscription holds the spoke; the hub with the Bastion sits in SUB2 behind a
    Connected peering: Bastion hosts are listed in both, VNets once more in SUB2 only."""
    spoke = "/subscriptions/%s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/spoke" % SUB
    hub = "/subscriptions/%s/resourceGroups/hub/providers/Microsoft.Network/virtualNetworks/hub" % SUB2
    peering = {"properties": {"remoteVirtualNetwork": {"id": hub}, "peeringState": "Connected"}}
    lists = {
        (SUB2, "virtualNetworks"): [
            {"id": hub, "properties": {"subnets": [{"id": hub + "/subnets/AzureBastionSubnet", "properties": {"addressPrefix": "10.0.1.0/26"}}]}}
        ],
        (SUB, "bastionHosts"): [],
        (SUB2, "bastionHosts"): [
            {
                "id": "/subscriptions/%s/resourceGroups/hub/providers/Microsoft.Network/bastionHosts/bas" % SUB2,
                "name": "bas",
                "properties": {"ipConfigurations": [{"properties": {"subnet": {"id": hub + "/subnets/AzureBastionSubnet"}}}]},
            }
        ],
    }

    class Api:
        subscription_id = SUB
        calls = []

        def list_in_subscription(self, path, api_version, params=None, subscription_id=None, each=None):
            self.calls.append((subscription_id, path.rsplit("/", 1)[1]))
            return lists[subscription_id, path.rsplit("/", 1)[1]]

    inventory = _topology.Inventory(virtual_networks=[{"id": spoke, "properties": {"subnets": [], "virtualNetworkPeerings": [peering]}}])
    record = {"id": vm_id("app-1"), "name": "app-1", "nics": [{"subnet_id": spoke + "/subnets/default"}]}
    topology = {vm_id("app-1").lower(): record}
    api = Api()
    resolved, sources = _topology.vms_and_sources(api, lambda _action, function: function(), [{"id": vm_id("app-1")}], topology, inventory, bastion="auto")
    assert [item[1] for item in resolved] == [record] and sources == {vm_id("app-1").lower(): ("10.0.1.0/26",)}
    assert sorted(api.calls) == sorted([(SUB2, "virtualNetworks"), (SUB, "bastionHosts"), (SUB2, "bastionHosts")])
    api.calls.clear()
    assert _topology.vms_and_sources(api, None, [{"id": vm_id("app-1")}], topology, inventory)[1] == {}
    assert api.calls == []  # without the option, nothing more is read


def test_saved_facts_keep_the_fleet_sized_lists_in_the_file_only(tmp_path):
    path = str(tmp_path / "facts.json")
    facts = {"summary": {"virtual_machines": 2}, "scope": {}, "virtual_machines": [{"id": "a"}, {"id": "b"}], "policies": [], "stale_rules": [], "drift": []}
    kept = _topology.save_facts(path, facts)
    assert kept == {"summary": {"virtual_machines": 2}, "scope": {}, "facts_file": path}
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert _topology.load_facts(path) == facts


@pytest.mark.parametrize(("content", "reason"), [(None, "cannot read"), ("not json", "is not JSON"), ('{"format": "other"}', "is not a facts file")])
def test_an_unusable_facts_file_says_why(tmp_path, content, reason):
    path = tmp_path / "facts.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=reason):
        _topology.load_facts(str(path))


@pytest.mark.parametrize(
    "document",
    [
        {"format": "f", "lists": {"virtual_machines": [{"id": "a", "tags": {"é": "ü"}}, {"id": "b"}], "empty": []}},
        {"azure_jit": {"summary": {"n": 1.5, "ok": True, "none": None}, "virtual_machines": [[1, 2], "x"]}, "tuple": (1, "2")},
        [],
        "text",
    ],
)
def test_private_json_is_what_json_dumps_writes(tmp_path, document):
    path = str(tmp_path / "doc.json")
    _topology.write_private_json(path, document)
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    assert text == json.dumps(document, separators=(",", ":"))


def nsg_id(group, name, sub=SUB):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkSecurityGroups/%s" % (sub, group, name)


class ListingApi:
    """Answers NSG GETs and lists from ``nsgs`` (ids), recording each call; ``barrier``: every
    call waits on it (proves the reads run side by side)."""

    def __init__(self, nsgs, barrier=None):
        self.nsgs = [{"id": item, "name": item.rsplit("/", 1)[1]} for item in nsgs]
        self.calls = []
        self.barrier = barrier

    def _wait(self):
        if self.barrier is not None:
            self.barrier.wait(timeout=10)

    def request(self, method, path, api_version):
        self.calls.append(("GET", path))
        self._wait()
        return next(item for item in self.nsgs if item["id"].lower() == path.lower())

    def list(self, path, api_version, params=None, each=None):
        self.calls.append(("LIST", path))
        self._wait()
        scope = path.split("/providers/")[0].lower() + "/"
        return [dict(item) for item in self.nsgs if item["id"].lower().startswith(scope)]

    def list_in_subscription(self, provider_path, api_version, params=None, subscription_id=None, each=None):
        return self.list("/subscriptions/%s/providers/%s" % (subscription_id, provider_path), api_version, params, each)


def run_call(action, function):
    return function()


def test_read_nsgs_gets_a_few_one_by_one_without_duplicates():
    ids = [nsg_id("rg-%d" % (n % 3), "nsg-%d" % n) for n in range(_topology.NSG_GET_LIMIT)]
    api = ListingApi(ids + [nsg_id("rg-0", "other")])
    found = _topology.read_nsgs(api, run_call, ids + [ids[0].upper()])
    assert sorted(found) == sorted(item.lower() for item in ids)
    assert sorted(api.calls) == sorted(("GET", item) for item in ids)


def test_read_nsgs_lists_each_resource_group_side_by_side_and_keeps_only_the_wanted():
    ids = [nsg_id("rg-%d" % (n % 3), "nsg-%d" % n) for n in range(_topology.NSG_GET_LIMIT + 1)]
    api = ListingApi(ids + [nsg_id("rg-0", "other"), nsg_id("rg-9", "elsewhere")], barrier=threading.Barrier(3))
    found = _topology.read_nsgs(api, run_call, ids)
    assert sorted(found) == sorted(item.lower() for item in ids)  # not "other": not asked for
    group_list = "/subscriptions/%s/resourceGroups/rg-%d/providers/Microsoft.Network/networkSecurityGroups"
    assert sorted(api.calls) == [("LIST", group_list % (SUB, n)) for n in range(3)]


def test_read_nsgs_lists_the_subscription_when_the_nsgs_are_spread_over_many_groups():
    other = "00000000-0000-0000-0000-00000000beef"
    ids = [nsg_id("rg-%d" % n, "nsg") for n in range(_topology.NSG_GROUP_LIST_LIMIT + 1)] + [nsg_id("rg-x", "nsg-x", sub=other)]
    api = ListingApi(ids)
    found = _topology.read_nsgs(api, run_call, ids)
    assert sorted(found) == sorted(item.lower() for item in ids)
    assert sorted(api.calls) == sorted(("LIST", "/subscriptions/%s/providers/Microsoft.Network/networkSecurityGroups" % sub) for sub in (SUB, other))


def test_read_nsgs_goes_on_without_a_read_the_caller_gives_up():
    ids = [nsg_id("rg-a", "one"), nsg_id("rg-b", "two")]
    api = ListingApi(ids)
    failed = []

    def call(action, function):
        if action.endswith("/two"):
            failed.append(action)
            return None
        return function()

    assert list(_topology.read_nsgs(api, call, ids)) == [ids[0].lower()]
    assert failed == ["read network security group %s" % ids[1]]


def test_listed_nsgs_share_one_copy_of_each_default_rule_and_read_the_same():
    def default_rule(nsg, name, priority, access):
        return {
            "name": name,
            "id": nsg + "/defaultSecurityRules/" + name,
            "etag": 'W/"%s"' % nsg,
            "properties": {"access": access, "priority": priority, "direction": "Inbound", "protocol": "*", "provisioningState": "Succeeded"},
        }

    def nsg(name):
        nsg_id_ = nsg_id("rg-a", name)
        custom = {"name": "ssh", "id": nsg_id_ + "/securityRules/ssh", "etag": 'W/"%s"' % name, "properties": {"access": "Allow", "priority": 100}}
        rules = [default_rule(nsg_id_, "AllowVnetInBound", 65000, "Allow"), default_rule(nsg_id_, "DenyAllInBound", 65500, "Deny")]
        return {"id": nsg_id_, "name": name, "properties": {"securityRules": [custom], "defaultSecurityRules": rules}}

    listed = [nsg("one"), nsg("two")]
    expected = [_nsg.rules_from_nsg(copy.deepcopy(item)) for item in listed]

    class PagingApi:
        def list_in_subscription(self, provider_path, api_version, params=None, subscription_id=None, each=None):
            for item in listed:
                each(item)
            return listed

    one, two = _topology.list_kind(PagingApi(), "network_security_groups", SUB)
    assert [_nsg.rules_from_nsg(one), _nsg.rules_from_nsg(two)] == expected
    assert all(a is b for a, b in zip(one["properties"]["defaultSecurityRules"], two["properties"]["defaultSecurityRules"], strict=True))
    assert one["properties"]["securityRules"][0]["etag"] == 'W/"one"'  # custom rules keep their identity


def test_a_saved_inventory_is_read_one_item_at_a_time_and_only_for_the_kinds_asked(tmp_path):
    path = str(tmp_path / "inventory.json")
    default = {"name": "DenyAllInBound", "properties": {"access": "Deny", "priority": 65500, "direction": "Inbound"}}
    nsgs = [{"id": nsg_id("rg", name), "properties": {"defaultSecurityRules": [dict(default)]}} for name in ("one", "two")]
    vm = {"id": vm_id("web-1"), "tags": {"note": "tab\there, newline\nthere"}}
    _topology.save_inventory(path, _topology.Inventory(virtual_machines=[vm], network_security_groups=nsgs), [SUB], clock=lambda: 1000.0)
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["kinds"] == ["virtual_machines", "network_security_groups"]
    reused, why = _topology.load_inventory(path, [SUB], ("virtual_machines", "network_security_groups"), clock=lambda: 1010.0)
    assert why is None and reused.virtual_machines == [vm] and reused.network_security_groups == nsgs
    one, two = reused.network_security_groups
    assert one["properties"]["defaultSecurityRules"][0] is two["properties"]["defaultSecurityRules"][0]  # held once, as when listed
    # a kind not asked for is never parsed: a damaged NSG line does not matter to a VM reader
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines[:2] + ["network_security_groups\t{damaged"]) + "\n")
    reused, why = _topology.load_inventory(path, [SUB], ("virtual_machines",), clock=lambda: 1010.0)
    assert why is None and reused.virtual_machines == [vm] and reused.kinds == ("virtual_machines",)
    assert "cannot read" in _topology.load_inventory(path, [SUB], ("network_security_groups",), clock=lambda: 1010.0)[1]
