"""Exposure and the public IP's SKU (issue 15): a VM with no NSG on its path is reachable from the
Internet only through a Basic-SKU public IP; a Standard-SKU one is closed to inbound traffic unless
an NSG allows it, and a VM without a public IP is never "exposed". nsg_jit_facts and armsim's
data-plane gate must agree, VM by VM."""

from harness import run_module
from roles_support import gate_admits

ARMSIM_SEED = {
    "subscription_id": "00000000-0000-0000-0000-000000000001",
    "resource_groups": [
        {
            "name": "rg-sku",
            "location": "westeurope",
            "network_security_groups": [
                {
                    "name": "nsg-open",
                    "rules": [{"name": "AllowSsh", "priority": 300, "access": "Allow", "protocol": "Tcp", "source": "*", "destination_ports": ["22"]}],
                }
            ],
            "virtual_networks": [
                {
                    "name": "vnet-sku",
                    "address_space": "10.30.0.0/16",
                    "subnets": [{"name": "bare", "prefix": "10.30.0.0/24"}, {"name": "guarded", "prefix": "10.30.1.0/24", "nsg": "nsg-open"}],
                }
            ],
            "virtual_machines": [
                {"name": "standard-bare", "nics": [{"subnet": "vnet-sku/bare", "public_ip": {"sku": "Standard"}}], "gates": [{"port": 22}]},
                {"name": "basic-bare", "nics": [{"subnet": "vnet-sku/bare", "public_ip": {"sku": "Basic"}}], "gates": [{"port": 22}]},
                {"name": "private-bare", "nics": [{"subnet": "vnet-sku/bare"}], "gates": [{"port": 22}]},
                {"name": "standard-open", "nics": [{"subnet": "vnet-sku/guarded", "public_ip": {"sku": "Standard"}}], "gates": [{"port": 22}]},
            ],
        }
    ],
}


def test_exposure_follows_the_public_ip_sku_and_the_gate_agrees(armsim):
    facts = run_module(armsim, "nsg_jit_facts", {"resource_groups": ["rg-sku"]})["ansible_facts"]["azure_jit"]
    ssh = {vm["name"]: next(entry for entry in vm["exposure"] if entry["port"] == 22) for vm in facts["virtual_machines"]}
    skus = {vm["name"]: vm["nics"][0]["public_ip_sku"] for vm in facts["virtual_machines"]}
    assert skus == {"standard-bare": "Standard", "basic-bare": "Basic", "private-bare": None, "standard-open": "Standard"}
    verdicts = {name: (entry["exposed"], entry["private_only"]) for name, entry in ssh.items()}
    assert verdicts == {
        "standard-bare": (False, True),  # no NSG: open inside the network, closed to the Internet
        "basic-bare": (True, False),  # no NSG and a Basic public IP: the whole Internet
        "private-bare": (False, True),  # no public IP: never "the Internet"
        "standard-open": (True, False),  # an NSG lets the Internet in through the Standard public IP
    }
    # the data plane agrees for the VMs with a public IP (the gate stands for an Internet client)
    assert gate_admits(armsim, "standard-bare") is False
    assert gate_admits(armsim, "basic-bare") is True
    assert gate_admits(armsim, "standard-open") is True
    assert facts["summary"]["exposed_ports"] == 2  # basic-bare: 22 (no NSG at all; Linux, so 22 only); standard-open: 22
