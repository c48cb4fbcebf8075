"""Microsoft.Compute: virtual machines (read-only: list_all with statusOnly, list by resource
group / location, GET with $expand=instanceView, instanceView)."""

from typing import Any

from armsim import model
from armsim.arm import RG, SUB, ArmError, Ctx, Response, dumps, json_response, not_found, rg_not_found
from armsim.model import Vm

VM_TYPE = "Microsoft.Compute/virtualMachines"
CREATED = "2024-01-15T09:30:00.0000000+00:00"
POWER_DISPLAY = {
    "running": "VM running",
    "stopped": "VM stopped",
    "deallocated": "VM deallocated",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "deallocating": "VM deallocating",
}


def instance_view_json(vm: Vm) -> dict:
    statuses = [
        {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "time": CREATED},
        {"code": f"PowerState/{vm.power_state}", "level": "Info", "displayStatus": POWER_DISPLAY.get(vm.power_state, f"VM {vm.power_state}")},
    ]
    out: dict[str, Any] = {"computerName": vm.name, "statuses": statuses}
    if vm.power_state == "running":
        out["osName"] = "ubuntu" if vm.os_type == "Linux" else "Windows Server 2022 Datacenter Azure Edition"
        out["vmAgent"] = {
            "vmAgentVersion": "2.9.1.1",
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready", "message": "Guest Agent is running"}],
        }
    return out


def vm_json(state: Any, vm: Vm, instance_view: bool = False) -> dict:
    # A trimmed but real-shaped VM: the SDK's per-VM deserialisation cost grows with every field,
    # and listing 10,000 VMs must stay fast. Fields the collection does not read are left out.
    os_profile: dict[str, Any] = {"computerName": vm.name, "adminUsername": "azureuser"}
    if vm.os_type == "Linux":
        os_profile["linuxConfiguration"] = {"disablePasswordAuthentication": True}
    else:
        os_profile["windowsConfiguration"] = {"provisionVMAgent": True}
    disk_name = f"{vm.name}_OsDisk_1_{vm.vm_uuid.replace('-', '')}"
    props: dict[str, Any] = {
        "vmId": vm.vm_uuid,
        "hardwareProfile": {"vmSize": vm.vm_size},
        "storageProfile": {"osDisk": {"osType": vm.os_type, "name": disk_name, "createOption": "FromImage"}},
        "osProfile": os_profile,
        "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": i == 0}} for i, nic_id in enumerate(vm.nic_ids)]},
        "provisioningState": "Succeeded",
    }
    if instance_view:
        props["instanceView"] = instance_view_json(vm)
    return {"name": vm.name, "id": vm.id, "type": VM_TYPE, "location": vm.location, "tags": vm.tags, "properties": props}


def vm_bytes(state: Any, vm: Vm, instance_view: bool = False) -> bytes:
    key = "iv" if instance_view else "plain"
    cached = vm.json_cache.get(key)
    if cached is None:
        cached = vm.json_cache[key] = dumps(vm_json(state, vm, instance_view))
    return cached


def _wants_instance_view(ctx: Ctx) -> bool:
    return ctx.req.query.get("statusonly", "").lower() == "true" or ctx.req.query.get("$expand", "").lower() == "instanceview"


def _list(ctx: Ctx, vms: list[Vm]) -> Response:
    iv = _wants_instance_view(ctx)
    return ctx.paged(vms, lambda vm: vm_bytes(ctx.state, vm, iv))


def list_all(ctx: Ctx, **_: str) -> Response:
    return _list(ctx, list(ctx.state.vms.values()))


def list_by_location(ctx: Ctx, loc: str, **_: str) -> Response:
    return _list(ctx, [vm for vm in ctx.state.vms.values() if vm.location.lower() == loc.lower()])


def list_rg(ctx: Ctx, rg: str, **_: str) -> Response:
    if ctx.state.rg(rg) is None:
        raise rg_not_found(rg)
    return _list(ctx, [vm for vm in ctx.state.vms.values() if vm.resource_group.lower() == rg.lower()])


def _get(ctx: Ctx, rg: str, name: str) -> Vm:
    if ctx.state.rg(rg) is None:
        raise rg_not_found(rg)
    vm = ctx.state.vms.get(model.res_id(ctx.state.subscription_id, rg, VM_TYPE, name).lower())
    if vm is None:
        raise not_found(VM_TYPE, name, rg)
    return vm


def get_vm(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    expand = ctx.req.query.get("$expand", "")
    if expand and expand.lower() not in ("instanceview", "userdata", "resiliencypolicy"):
        raise ArmError(400, "InvalidParameter", f"The value '{expand}' of parameter '$expand' is not valid. Allowed values are 'instanceView', 'userData'.")
    return Response(200, vm_bytes(ctx.state, _get(ctx, rg, name), expand.lower() == "instanceview"))


def get_instance_view(ctx: Ctx, rg: str, name: str, **_: str) -> Response:
    return json_response(instance_view_json(_get(ctx, rg, name)))


COMP = r"/providers/Microsoft\.Compute"

ROUTES = [
    ("GET", SUB + COMP + r"/virtualMachines$", list_all),
    ("GET", SUB + COMP + r"/locations/(?P<loc>[^/]+)/virtualMachines$", list_by_location),
    ("GET", RG + COMP + r"/virtualMachines$", list_rg),
    ("GET", RG + COMP + r"/virtualMachines/(?P<name>[^/]+)$", get_vm),
    ("GET", RG + COMP + r"/virtualMachines/(?P<name>[^/]+)/instanceView$", get_instance_view),
]
