"""Azure Bastion: option parsing, reachability through peerings, resolution errors, sources and
the "reachable only through Bastion" verdict (pure, REST-shaped inputs)."""

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm, _bastion, _nsg
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError

SUB = "00000000-0000-0000-0000-000000000001"
OTHER = "00000000-0000-0000-0000-000000000002"
NET = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network"


def vnet_id(name, sub=SUB):
    return f"/subscriptions/{sub}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/{name}"


def vnet(name, subnets, peers=(), sub=SUB):
    """A VNet REST dict: ``subnets`` {name: prefix or [prefixes]}, ``peers`` [(remote name, state)]."""
    vid = vnet_id(name, sub)
    return {
        "id": vid,
        "properties": {
            "subnets": [
                {"id": f"{vid}/subnets/{sub_name}", "properties": {"addressPrefix": prefix} if isinstance(prefix, str) else {"addressPrefixes": prefix}}
                for sub_name, prefix in subnets.items()
            ],
            "virtualNetworkPeerings": [
                {"name": f"to-{remote}", "properties": {"remoteVirtualNetwork": {"id": vnet_id(remote)}, "peeringState": state}} for remote, state in peers
            ],
        },
    }


def bastion(name, vnet_name):
    return {
        "id": f"{NET}/bastionHosts/{name}",
        "name": name,
        "properties": {"ipConfigurations": [{"properties": {"subnet": {"id": vnet_id(vnet_name) + "/subnets/AzureBastionSubnet"}}}]},
    }


def record(name, vnet_name):
    return {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}",
        "name": name,
        "nics": [{"subnet_id": vnet_id(vnet_name) + "/subnets/default", "private_ip": "10.1.0.4"}],
    }


VNETS = [
    vnet("hub", {"AzureBastionSubnet": "10.0.1.0/26"}, [("spoke", "Connected"), ("spoke2", "Connected")]),
    vnet("hub2", {"AzureBastionSubnet": "10.5.1.0/26"}, [("spoke2", "Connected")]),
    vnet("spoke", {"default": "10.1.0.0/24"}, [("hub", "Connected")]),
    vnet("spoke2", {"default": "10.2.0.0/24"}, [("hub", "Connected"), ("hub2", "Connected")]),
    vnet("half", {"default": "10.3.0.0/24"}, [("hub", "Initiated")]),
    vnet("own", {"default": "10.4.0.0/24", "AzureBastionSubnet": ["10.4.9.0/26", "10.4.9.64/26"]}, [("hub", "Connected")]),
]
NETWORKS = _bastion.index_networks(VNETS)
BASTIONS = _bastion.index_bastions([bastion("bas-hub", "hub"), bastion("bas-hub2", "hub2"), bastion("bas-own", "own")], NETWORKS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("auto", "auto"),
        (" AUTO ", "auto"),
        (f"{NET}/bastionHosts/bas-hub", f"{NET}/bastionHosts/bas-hub"),
        ({"id": f"{NET}/bastionHosts/bas-hub"}, f"{NET}/bastionHosts/bas-hub"),
        ({"name": "bas-hub", "resource_group": "rg-net"}, f"{NET}/bastionHosts/bas-hub"),
    ],
)
def test_parse_bastion_option(value, expected):
    assert _arm.bastion_reference(value, SUB) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nearest", "bastion 'nearest' is not valid: expected 'auto'"),
        ({"name": "bas-hub"}, "is not valid"),
        ({"name": "bas-hub", "resource_group": "rg", "id": f"{NET}/bastionHosts/x"}, "is not valid"),
        ({"nmae": "x"}, "unknown key(s) nmae"),
        (f"{NET}/virtualNetworks/hub", "is not a Bastion host id"),
        (42, "bastion 42 is not valid"),
    ],
)
def test_parse_bastion_option_refuses(value, message):
    with pytest.raises(JitValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _arm.bastion_reference(value, SUB)


def test_named_bastion_needs_a_subscription():
    with pytest.raises(JitValidationError, match="needs a subscription"):
        _arm.bastion_reference({"name": "b", "resource_group": "rg"}, None)


def test_index_keeps_connected_peers_and_subnet_prefixes():
    assert NETWORKS[vnet_id("half").lower()]["peers"] == []  # Initiated does not count
    assert NETWORKS[vnet_id("spoke2").lower()]["peers"] == [vnet_id("hub").lower(), vnet_id("hub2").lower()]
    assert BASTIONS[f"{NET}/bastionHosts/bas-own".lower()].prefixes == ("10.4.9.0/26", "10.4.9.64/26")
    assert BASTIONS[f"{NET}/bastionHosts/bas-hub".lower()].prefixes == ("10.0.1.0/26",)


def test_reachable_own_then_peered():
    own, peered = _bastion.reachable(record("vm", "own"), NETWORKS, BASTIONS)
    assert [host.name for host in own] == ["bas-own"] and [host.name for host in peered] == ["bas-hub"]
    assert _bastion.reachable(record("vm", "half"), NETWORKS, BASTIONS) == ([], [])


def test_resolve_auto_prefers_the_vms_own_vnet():
    chosen = _bastion.resolve("auto", [record("a", "spoke"), record("o", "own")], NETWORKS, BASTIONS)
    assert {key.rsplit("/", 1)[-1]: host.name for key, host in chosen.items()} == {"a": "bas-hub", "o": "bas-own"}


def test_resolve_names_every_problem_at_once():
    with pytest.raises(JitValidationError) as caught:
        _bastion.resolve("auto", [record("h", "half"), record("b", "spoke2"), record("ok", "spoke")], NETWORKS, BASTIONS)
    message = str(caught.value)
    assert "no Azure Bastion can reach VM h" in message and vnet_id("half").lower() in message
    assert "more than one Azure Bastion can reach VM b" in message and "bas-hub2" in message
    assert "VM ok" not in message and message.endswith("Nothing was written")


def test_resolve_named():
    chosen = _bastion.resolve(f"{NET}/BASTIONHOSTS/bas-hub2", [record("b", "spoke2")], NETWORKS, BASTIONS)
    assert [host.name for host in chosen.values()] == ["bas-hub2"]
    with pytest.raises(JitValidationError, match="bas-hub2 cannot reach VM a"):
        _bastion.resolve(f"{NET}/bastionHosts/bas-hub2", [record("a", "spoke")], NETWORKS, BASTIONS)
    with pytest.raises(JitValidationError, match="bastion host .*/bas-nope does not exist"):
        _bastion.resolve(f"{NET}/bastionHosts/bas-nope", [record("a", "spoke")], NETWORKS, BASTIONS)


def test_resolve_fails_when_the_subnet_was_not_read():
    unknown = _bastion.index_bastions([bastion("bas-far", "far")], NETWORKS)
    with pytest.raises(JitValidationError, match="has no address prefix"):
        _bastion.resolve(f"{NET}/bastionHosts/bas-far", [record("a", "far")], NETWORKS, unknown)


def test_remote_subscriptions():
    networks = _bastion.index_networks([vnet("spoke", {}, [("hub", "Connected")])])
    networks[vnet_id("spoke").lower()]["peers"].append(vnet_id("hub", OTHER).lower())
    assert _bastion.remote_subscriptions(networks, [vnet_id("spoke")]) == [SUB, OTHER]


def test_request_source_and_policy_sources():
    hub = BASTIONS[f"{NET}/bastionHosts/bas-hub".lower()]
    assert _bastion.request_source(hub) == ("10.0.1.0/26",)
    with pytest.raises(JitValidationError, match="has 2 address prefixes"):
        _bastion.request_source(BASTIONS[f"{NET}/bastionHosts/bas-own".lower()])
    ports = [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]
    assert _bastion.with_sources(ports, hub.prefixes) == [
        {"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "10.0.1.0/26", "maxRequestAccessDuration": "PT3H"}
    ]
    two = _bastion.with_sources(ports, ("10.4.9.64/26", "10.4.9.0/26"))
    assert two[0]["allowedSourceAddressPrefixes"] == ["10.4.9.0/26", "10.4.9.64/26"] and "allowedSourceAddressPrefix" not in two[0]


def rule(name, priority, access, source, *, port="22", destination="*"):
    return {
        "name": name,
        "properties": {
            "priority": priority,
            "direction": "Inbound",
            "access": access,
            "protocol": "Tcp",
            "sourceAddressPrefix": source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": destination,
            "destinationPortRange": port,
        },
    }


CONTEXT = _nsg.AddressContext(virtual_network=["10.1.0.0/16"])


def admitted(*rules):
    return _bastion.admitted_sources([_nsg.SecurityRule.from_azure(item) for item in rules], "10.1.0.4", 22, "TCP", CONTEXT)


def test_admitted_sources_stop_at_a_deny_of_every_source():
    assert admitted() == ["VirtualNetwork", "AzureLoadBalancer"]  # Azure's defaults reach the port
    assert admitted(rule("bastion", 200, "Allow", "10.0.1.0/26"), rule("jit-deny", 4096, "Deny", "*", destination="10.1.0.4")) == ["10.0.1.0/26"]
    # a deny of some sources does not stop the walk; other ports and destinations do not count
    partial = admitted(
        rule("deny-some", 150, "Deny", "203.0.113.0/24"),
        rule("other-port", 160, "Allow", "*", port="443"),
        rule("other-vm", 170, "Allow", "*", destination="10.1.0.9"),
    )
    assert partial == ["VirtualNetwork", "AzureLoadBalancer"]


def test_bastion_only_verdict():
    hub = [BASTIONS[f"{NET}/bastionHosts/bas-hub".lower()]]
    only = [[[["10.0.1.0/26"]]]]  # one NIC, one NSG on its path, one port: its admitted sources
    assert _bastion.bastion_only(only, ["10.0.1.0/27"], [{"exposed": False}], hub) is True
    assert _bastion.bastion_only(only, ["*"], [], hub) is False  # the policy allows any source
    assert _bastion.bastion_only(only, [], [{"exposed": True}], hub) is False
    assert _bastion.bastion_only(only, [], [], []) is False  # no Bastion reaches it
    assert _bastion.bastion_only([[[["VirtualNetwork"]]]], [], [], hub) is False
    assert _bastion.bastion_only([[]], [], [], hub) is False  # a NIC without NSG
    # one restrictive NSG on the path is enough: traffic must pass both
    assert _bastion.bastion_only([[[["VirtualNetwork"]], [["10.0.1.4"]]]], [], [], hub) is True
