"""Microsoft.Compute virtual machines through the real SDK."""

import pytest
from azure.core.exceptions import ResourceNotFoundError
from simtest import SUB, vm_id


def _power(vm) -> str:
    view = getattr(vm, "instance_view", None) or vm
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


def test_list_and_get(clients):
    compute = clients[3]
    vms = {vm.name: vm for vm in compute.virtual_machines.list_all()}
    assert set(vms) == {"web-1", "web-2", "win-1", "bare-1", "off-1", "db-1"}
    web = vms["web-1"]
    assert web.id == vm_id("rg-web", "web-1") and web.location == "westeurope" and web.tags == {"role": "web"}
    assert web.type == "Microsoft.Compute/virtualMachines"
    assert web.storage_profile.os_disk.os_type == "Linux" and vms["win-1"].storage_profile.os_disk.os_type == "Windows"
    assert web.network_profile.network_interfaces[0].id.endswith("/networkInterfaces/web-1-nic")
    assert web.network_profile.network_interfaces[0].primary is True
    assert web.vm_id and web.provisioning_state == "Succeeded" and web.hardware_profile.vm_size
    assert web.os_profile.computer_name == "web-1"
    assert vms["web-1"].instance_view is None
    assert {vm.name for vm in compute.virtual_machines.list("rg-db")} == {"db-1"}
    got = compute.virtual_machines.get("rg-web", "off-1", expand="instanceView")
    assert _power(got) == "PowerState/deallocated"
    assert _power(compute.virtual_machines.instance_view("rg-web", "web-1")) == "PowerState/running"


def test_status_only(clients):
    vms = {vm.name: vm for vm in clients[3].virtual_machines.list_all(status_only="true")}
    assert _power(vms["web-1"]) == "PowerState/running"
    assert _power(vms["off-1"]) == "PowerState/deallocated"


def test_by_location(arm):
    r = arm.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/northeurope/virtualMachines")
    assert [v["name"] for v in r.json()["value"]] == ["db-1"]


def test_not_found(clients, arm):
    with pytest.raises(ResourceNotFoundError):
        clients[3].virtual_machines.get("rg-web", "nope")
    r = arm.call("GET", f"/subscriptions/{SUB}/resourceGroups/nope/providers/Microsoft.Compute/virtualMachines")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceGroupNotFound"


def test_power_state_admin(sim, clients):
    sim.set_power_state(vm_id("rg-web", "web-1"), "stopped")
    assert _power(clients[3].virtual_machines.get("rg-web", "web-1", expand="instanceView")) == "PowerState/stopped"
