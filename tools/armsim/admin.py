"""The admin API (plain JSON). Served on its own loopback HTTP port (``admin_url`` in the ready
file) and also under ``/admin`` on the HTTPS port. Admin calls are never counted in /stats and
never hit by faults.

    GET    /health                 {"ok": true}
    GET    /stats                  counters (requests, reads, writes, by_method, by_operation, ...)
    POST   /stats/reset            zero the counters (and the request log) only
    GET    /requests               the last ARM requests: [{method, path, query, status, operation}]
    GET    /clock                  {"now": ISO time, "offset_seconds": n}
    POST   /clock/advance          {"seconds": n}: simulated time moves on; expiries happen
    GET    /faults                 active faults
    POST   /faults                 add a fault (see README), answers the stored fault
    DELETE /faults                 remove every fault
    POST   /reset                  back to the seed: state, counters, faults, clock
    GET    /state                  every resource as JSON
    GET    /gates                  data-plane gates: {"<vm>:<port>": {...}}
    GET    /config, POST /config   {"apply_delay", "deny_apply_delay", "page_size", "lro_retry_after"}; GET also
                                   shows the service profile and how many calls its token buckets throttled
    POST   /vm/power               {"id" | "resource_group"+"name", "power_state"}: change a VM's power state
"""

import json
from typing import Any

from armsim import bastion, compute, jit, model, network
from armsim.arm import Request, Response, dumps
from armsim.clock import iso


def _ok(obj: Any = None, status: int = 200) -> Response:
    return Response(status, dumps({"ok": True} if obj is None else obj), {"Content-Type": "application/json"})


def _bad(message: str, status: int = 400) -> Response:
    return Response(status, dumps({"error": message}), {"Content-Type": "application/json"})


def _body(req: Request) -> Any:
    if not req.body:
        return {}
    return json.loads(req.body)


def handle(app: Any, req: Request, path: str) -> Response:
    path = "/" + path.strip("/")
    method = req.method
    try:
        body = _body(req) if method in ("POST", "PUT", "PATCH") else {}
    except ValueError as exc:
        return _bad(f"invalid JSON: {exc}")
    route = (method, path)
    if route == ("GET", "/health"):
        return _ok()
    if route == ("GET", "/stats"):
        return _ok(app.stats.snapshot())
    if route == ("POST", "/stats/reset"):
        app.stats.reset()
        app.request_log.clear()
        return _ok()
    if route == ("GET", "/requests"):
        return _ok(list(app.request_log))
    if route == ("GET", "/clock"):
        return _ok({"now": iso(app.clock.now()), "offset_seconds": app.clock.offset})
    if route == ("POST", "/clock/advance"):
        try:
            seconds = float(body.get("seconds"))
        except (TypeError, ValueError):
            return _bad('body must be {"seconds": number}')
        if seconds < 0:
            return _bad("time only moves forward")
        app.advance(seconds)
        return _ok({"now": iso(app.clock.now()), "offset_seconds": app.clock.offset})
    if route == ("GET", "/faults"):
        return _ok(app.faults.list())
    if route == ("POST", "/faults"):
        try:
            return _ok(app.faults.add(body), 201)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
    if route == ("DELETE", "/faults"):
        app.faults.clear()
        return _ok()
    if route == ("POST", "/reset"):
        app.reset()
        return _ok()
    if route == ("GET", "/state"):
        with app.lock:
            body = state_json(app.state)
            body["extra_subscriptions"] = [state_json(state) for state in app.subscriptions.values() if state is not app.state]
            return _ok(body)
    if route == ("GET", "/gates"):
        return _ok(app.gates.describe() if app.gates else {})
    if route == ("GET", "/config"):
        return _ok(_config(app))
    if route == ("POST", "/config"):
        if "apply_delay" in body:
            app.apply_delay = float(body["apply_delay"])
        if "deny_apply_delay" in body:
            app.deny_apply_delay = float(body["deny_apply_delay"])
        if "apply_hold" in body:
            app.apply_hold = bool(body["apply_hold"])
        if "deny_placement" in body:
            if body["deny_placement"] not in jit.DENY_PLACEMENTS:
                return _bad(f"deny_placement must be one of {', '.join(jit.DENY_PLACEMENTS)}")
            for state in app.subscriptions.values():
                state.deny_placement = body["deny_placement"]
        if "initiate_source_rule" in body:
            if body["initiate_source_rule"] not in jit.SOURCE_RULES:
                return _bad(f"initiate_source_rule must be one of {', '.join(jit.SOURCE_RULES)}")
            app.initiate_source_rule = body["initiate_source_rule"]
        if "page_size" in body:
            if int(body["page_size"]) < 1:
                return _bad("page_size must be >= 1")
            app.page_size = int(body["page_size"])
        if "lro_retry_after" in body:
            app.lro_retry_after = int(body["lro_retry_after"])
        return _ok(_config(app))
    if route == ("GET", "/applies"):
        return _ok({"due": app.applies_due, "held": len(app.held_applies)})
    if route == ("POST", "/apply"):
        return _ok({"applied": app.release_applies()})
    if route == ("POST", "/vm/power"):
        return _vm_power(app, body)
    return _bad(f"no admin endpoint {method} {path}", 404)


def state_json(state: model.State) -> dict:
    """Every resource of one subscription, for GET /state.

    Lives here, not on model.State: the renderers are in the route modules, which import model,
    so model stays a leaf and every armsim import points one way.
    """
    return {
        "subscription_id": state.subscription_id,
        "tenant_id": state.tenant_id,
        "resource_groups": [{"id": r.id, "name": r.name, "location": r.location, "tags": r.tags} for r in state.resource_groups.values()],
        "virtual_machines": [compute.vm_json(state, vm, instance_view=True) for vm in state.vms.values()],
        "network_interfaces": [network.nic_json(nic) for nic in state.nics.values()],
        "network_security_groups": [network.nsg_json(state, nsg) for nsg in state.nsgs.values()],
        "virtual_networks": [network.vnet_json(v) for v in state.vnets.values()],
        "public_ip_addresses": [network.public_ip_json(p) for p in state.public_ips.values()],
        "bastion_hosts": [bastion.bastion_json(b) for b in state.bastions.values()],
        "jit_policies": [jit.policy_json(p) for p in state.policies.values()],
    }


def _config(app: Any) -> dict:
    return {
        "apply_delay": app.apply_delay,
        "deny_apply_delay": app.deny_apply_delay,
        "apply_hold": app.apply_hold,
        "initiate_source_rule": app.initiate_source_rule,
        "deny_placement": app.state.deny_placement,
        "page_size": app.page_size,
        "lro_retry_after": app.lro_retry_after,
        "profile": app.profile.describe(),
        "throttled": app.throttle.throttled,
    }


def _vm_power(app: Any, body: dict) -> Response:
    power = str(body.get("power_state") or "").lower()
    if power not in ("running", "stopped", "deallocated", "starting", "stopping", "deallocating"):
        return _bad("power_state must be running, stopped, deallocated, starting, stopping or deallocating")
    with app.lock:
        state = app.state
        vm_id = body.get("id") or model.res_id(
            state.subscription_id, str(body.get("resource_group")), "Microsoft.Compute/virtualMachines", str(body.get("name"))
        )
        vm = state.vms.get(str(vm_id).lower())
        if vm is None:
            return _bad(f"no VM {vm_id}", 404)
        vm.power_state = power
        vm.json_cache.clear()
    return _ok({"id": vm.id, "power_state": power})
