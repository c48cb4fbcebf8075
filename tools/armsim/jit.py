"""Microsoft.Security just-in-time network access policies (api-version 2020-01-01).

A policy write synchronises one DENY rule per VM per NSG on its path; ``initiate`` records a
request and (after the apply delay) writes one ALLOW rule per VM, NSG and port; the simulated
clock expires them. See README.md for the rules and the choices made where Azure is undocumented.
"""

import ipaddress
import uuid
import zlib
from typing import Any

from armsim import model, network, nsgeval, pricing, schema
from armsim.arm import RG, SEC, SUB, ArmError, Ctx, Response, dumps, json_response, rg_not_found
from armsim.clock import iso, parse_duration, parse_iso
from armsim.model import JitPolicy, JitRequest, JitRequestPort, JitRequestVm, Nsg, Rule, State, Vm

API_VERSION = "2020-01-01"
POLICY_TYPE = "Microsoft.Security/locations/jitNetworkAccessPolicies"
MIN_DURATION = 5 * 60
MAX_DURATION = 24 * 3600
END_TIME_TOLERANCE = 5.0  # seconds of clock skew tolerated on endTimeUtc - now <= max
PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "*": "*"}
DENY_DESCRIPTION = "MDC JIT Network Access rule for policy '{policy}' of VM '{vm}'."
ALLOW_DESCRIPTION = "MDC JIT Network Access rule created by an initiation request for policy '{policy}' of VM '{vm}'."


def policy_id(sub: str, rg: str, location: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/{name}"


def format_duration(seconds: float) -> str:
    """Like .NET XmlConvert.ToString(TimeSpan): 10800 -> PT3H, 5400 -> PT1H30M, 86400 -> P1D."""
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time_part = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    if time_part:
        out += "T" + time_part
    return out if out != "P" else "PT0S"


def _int32(*parts: str) -> int:
    value = zlib.crc32(":".join(p.lower() for p in parts).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def deny_rule_name(policy: JitPolicy, vm: Vm) -> str:
    return f"MicrosoftDefenderForCloud-JITRule_{_int32(policy.id, vm.id)}_{uuid.uuid4().hex.upper()}"


def allow_rule_name(policy: JitPolicy, vm: Vm, port: int) -> str:
    return f"MicrosoftDefenderForCloud-JITRule-{_int32(policy.id, vm.id, str(port))}-{uuid.uuid4().hex.upper()}"


# --- rendering --------------------------------------------------------------------------------


def _port_request_json(port: JitRequestPort) -> dict:
    out: dict[str, Any] = {"number": port.number}
    if port.sources:
        out["allowedSourceAddressPrefixes"] = list(port.sources)
    else:
        out["allowedSourceAddressPrefix"] = port.source
    out.update({"endTimeUtc": iso(port.end_time), "status": port.status, "statusReason": port.status_reason})
    return out


def request_json(req: JitRequest) -> dict:
    out: dict[str, Any] = {
        "virtualMachines": [{"id": v.id, "ports": [_port_request_json(p) for p in v.ports]} for v in req.virtual_machines],
        "startTimeUtc": iso(req.start_time),
        "requestor": req.requestor,
    }
    if req.justification is not None:
        out["justification"] = req.justification
    return out


def policy_json(policy: JitPolicy) -> dict:
    return {
        "id": policy.id,
        "name": policy.name,
        "type": POLICY_TYPE,
        "location": policy.location,
        "kind": policy.kind,
        "properties": {
            "virtualMachines": policy.virtual_machines,
            "requests": [request_json(r) for r in policy.requests],
            "provisioningState": "Succeeded",
        },
    }


# --- validation -------------------------------------------------------------------------------


def _bad(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def _check_prefix(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("InvalidAllowedSourceAddressPrefix", f"{where}: the allowed source address prefix must be a non-empty string.")
    value = value.strip()
    if value == "*":
        return value
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise _bad(
            "InvalidAllowedSourceAddressPrefix", f"{where}: '{value}' is not a valid source address prefix. Use '*', an IPv4 address or an IPv4 CIDR range."
        ) from exc
    if net.version != 4:
        raise _bad("InvalidAllowedSourceAddressPrefix", f"{where}: IPv6 source address prefix '{value}' is not supported.")
    return value


def _normalise_port(raw: Any, vm_id: str) -> dict:
    if not isinstance(raw, dict):
        raise _bad("InvalidRequestContent", f"Virtual machine '{vm_id}': every port must be an object.")
    number = raw.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 65535:
        raise _bad("InvalidPortNumber", f"Virtual machine '{vm_id}': port number '{number}' is invalid. Allowed range is 0-65535.")
    where = f"Virtual machine '{vm_id}', port {number}"
    protocol = raw.get("protocol")
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        raise _bad("InvalidProtocol", f"{where}: protocol '{protocol}' is invalid. Allowed values are TCP, UDP and *.")
    duration_text = raw.get("maxRequestAccessDuration")
    duration = parse_duration(duration_text) if isinstance(duration_text, str) else None
    if duration is None:
        raise _bad(
            "InvalidMaxRequestAccessDuration", f"{where}: maxRequestAccessDuration '{duration_text}' is not a valid ISO 8601 duration (for example PT3H)."
        )
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise _bad(
            "InvalidMaxRequestAccessDuration", f"{where}: maxRequestAccessDuration '{duration_text}' is out of range. It must be between 5 minutes and 1 day."
        )
    single = raw.get("allowedSourceAddressPrefix")
    many = raw.get("allowedSourceAddressPrefixes")
    if single is not None and many is not None:
        raise _bad(
            "InvalidAllowedSourceAddressPrefix",
            f"{where}: allowedSourceAddressPrefix and allowedSourceAddressPrefixes are mutually exclusive. Specify only one.",
        )
    if single is None and many is None:
        raise _bad("InvalidAllowedSourceAddressPrefix", f"{where}: one of allowedSourceAddressPrefix or allowedSourceAddressPrefixes is required.")
    out: dict[str, Any] = {"number": number, "protocol": PROTOCOLS[protocol.lower()]}
    if many is not None:
        if not isinstance(many, list) or not many:
            raise _bad("InvalidAllowedSourceAddressPrefix", f"{where}: allowedSourceAddressPrefixes must be a non-empty array.")
        out["allowedSourceAddressPrefixes"] = [_check_prefix(p, where) for p in many]
    else:
        out["allowedSourceAddressPrefix"] = _check_prefix(single, where)
    out["maxRequestAccessDuration"] = format_duration(duration)
    return out


def validate_policy(state: State, this_id: str, location: str, body: Any) -> tuple[str, list[dict]]:
    """Validate a PUT body; return (kind, normalised virtualMachines)."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise _bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'properties' is required.")
    raw_vms = body["properties"].get("virtualMachines")
    if not isinstance(raw_vms, list):
        raise _bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'properties.virtualMachines' must be an array.")
    seen: set[str] = set()
    result = []
    for raw in raw_vms:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise _bad("InvalidRequestContent", "Every virtual machine of the policy needs an 'id'.")
        vm_id = raw["id"]
        if vm_id.lower() in seen:
            raise _bad("DuplicateVirtualMachine", f"Virtual machine '{vm_id}' appears more than once in the policy.")
        seen.add(vm_id.lower())
        vm = state.vms.get(vm_id.lower())
        if vm is None:
            raise _bad("VirtualMachineNotFound", f"Virtual machine '{vm_id}' was not found in subscription '{state.subscription_id}'.")
        if vm.location.lower() != location.lower():
            raise _bad(
                "VirtualMachineLocationMismatch",
                f"Virtual machine '{vm_id}' is in location '{vm.location}', but the policy is in location '{location}'. "
                "A Just-in-time policy can only contain virtual machines of its own location.",
            )
        if not state.nsg_path(vm):
            raise _bad(
                "VirtualMachineNotSupported",
                f"Virtual machine '{vm_id}' has no network security group on its network interfaces or subnets; Just-in-time access cannot be enabled.",
            )
        owner = state.vm_policy.get(vm_id.lower())
        if owner is not None and owner != this_id.lower():
            other = state.policies[owner]
            raise _bad(
                "VirtualMachineInMultiplePolicies",
                f"Virtual machine '{vm_id}' is already configured in Just-in-time policy '{other.id}'. A virtual machine can belong to one policy only.",
            )
        ports_raw = raw.get("ports")
        if not isinstance(ports_raw, list) or not ports_raw:
            raise _bad("InvalidRequestContent", f"Virtual machine '{vm_id}': 'ports' must be a non-empty array.")
        ports = [_normalise_port(p, vm_id) for p in ports_raw]
        numbers = [p["number"] for p in ports]
        if len(set(numbers)) != len(numbers):
            raise _bad("DuplicatePortNumber", f"Virtual machine '{vm_id}': a port number appears more than once.")
        entry: dict[str, Any] = {"id": vm_id, "ports": ports}
        if isinstance(raw.get("publicIpAddress"), str):
            entry["publicIpAddress"] = raw["publicIpAddress"]
        result.append(entry)
    kind = body.get("kind") if isinstance(body.get("kind"), str) else "Basic"
    return kind, result


# --- NSG rule maintenance ----------------------------------------------------------------------


def _matches_owner(rule: Rule, access: str, policy_name: str, vm_name: str) -> bool:
    description = str(rule.props.get("description") or "").lower()
    return (
        model.is_jit_rule_name(rule.name)
        and rule.access.lower() == access.lower()
        and f"policy '{policy_name.lower()}' of vm '{vm_name.lower()}'" in description
    )


def find_deny_rule(nsg: Nsg, policy_name: str, vm: Vm, ips: list[str]) -> Rule | None:
    candidates = [r for r in nsg.rules.values() if _matches_owner(r, "Deny", policy_name, vm.name)]
    for rule in candidates:
        if set(rule.destination_prefixes) & set(ips):
            return rule
    return candidates[0] if candidates else None


def _dest(props: dict, ips: list[str]) -> None:
    if len(ips) == 1:
        props["destinationAddressPrefix"] = ips[0]
    else:
        props["destinationAddressPrefixes"] = list(ips)


def _overlapping_max(nsg: Nsg, ports: list[str]) -> int | None:
    prios = [
        r.priority
        for r in nsg.rules.values()
        if r.direction.lower() == "inbound" and not model.is_jit_rule_name(r.name) and nsgeval.ranges_overlap(r.destination_ports, ports)
    ]
    return max(prios) if prios else None


DENY_PLACEMENTS = ("top", "bottom")
"""Where a new JIT deny rule goes when no existing rule overlaps its ports (admin /config
``deny_placement``). ``top`` (default): Microsoft's documentation says the new rules "take top
priority" when no rule exists for the ports; public exports show them from 1000 up, which leaves
100-999 for the allow rules that must come before them. ``bottom``: from 4096 down, also seen in
public exports. With an overlapping rule, both put the deny rule right after the last one ("those
existing rules take priority"). Nothing in the collection may depend on the numbers: its tests run
under both."""
TOP_BASE = 1000


def deny_priority(nsg: Nsg, ports: list[str], current: Rule | None = None, placement: str = "top") -> int:
    """After any existing (non-JIT) rule overlapping the ports, else by ``placement``."""
    used = {r.priority for r in nsg.rules.values() if r.direction.lower() == "inbound" and r is not current}
    after = _overlapping_max(nsg, ports)
    if current is not None and (after is None or current.priority > after):
        return current.priority
    if after is not None:
        for p in range(after + 1, 4097):
            if p not in used:
                return p
    order = list(range(TOP_BASE, 4097)) + list(range(TOP_BASE - 1, 99, -1)) if placement == "top" else list(range(4096, 99, -1))
    for p in order:
        if p not in used:
            return p
    raise ArmError(400, "SecurityRulesLimitReached", f"No free inbound priority left in network security group {nsg.id}.")


def allow_priority(nsg: Nsg, before: int = 4097) -> int | None:
    """The lowest free inbound priority below ``before`` (the VM's deny rule on this NSG, which the
    allow rule must precede); ``None`` when there is none (the rule cannot be applied there)."""
    used = nsg.inbound_priorities()
    for p in range(100, min(before, 4097)):
        if p not in used:
            return p
    return None


def _sync_deny_rules(state: State, policy: JitPolicy, vm: Vm, ports: list[int]) -> None:
    port_ranges = [str(p) for p in sorted(ports)]
    for nsg, ips in state.nsg_path(vm):
        rule = find_deny_rule(nsg, policy.name, vm, ips)
        props: dict[str, Any] = {
            "description": DENY_DESCRIPTION.format(policy=policy.name, vm=vm.name),
            "protocol": "*",
            "sourcePortRange": "*",
            "destinationPortRanges": port_ranges,
            "sourceAddressPrefix": "*",
            "access": "Deny",
            "priority": 0,
            "direction": "Inbound",
        }
        _dest(props, ips)
        if rule is None:
            network.check_rule_room(len(nsg.rules) + 1)  # assumption: the policy write fails (README)
            props["priority"] = deny_priority(nsg, port_ranges, placement=state.deny_placement)
            new = Rule(deny_rule_name(policy, vm), props)
            nsg.rules[new.name.lower()] = new
            nsg.touch()
            continue
        props["priority"] = deny_priority(nsg, port_ranges, current=rule, placement=state.deny_placement)
        if rule.name.lower().startswith("microsoftdefenderforcloud"):
            props["description"] = DENY_DESCRIPTION.format(policy=policy.name, vm=vm.name)
        else:  # an older SecurityCenter-JITRule: keep its description, update its ports
            props["description"] = rule.props.get("description")
        if props != rule.props:
            rule.props = props
            nsg.touch()


def _remove_rules(state: State, vm: Vm, policy_name: str, access: str, port: int | None = None) -> None:
    for nsg, _ips in state.nsg_path(vm):
        doomed = [key for key, r in nsg.rules.items() if _matches_owner(r, access, policy_name, vm.name) and (port is None or str(port) in r.destination_ports)]
        for key in doomed:
            del nsg.rules[key]
        if doomed:
            nsg.touch()


def _delete_allow_rules(state: State, port: JitRequestPort) -> None:
    for nsg_key, rule_key in port.allow_rules:
        nsg = state.nsgs.get(nsg_key)
        if nsg is not None and rule_key in nsg.rules:
            del nsg.rules[rule_key]
            nsg.touch()
    port.allow_rules = []


def _active_ports(policy: JitPolicy, vm_id: str):
    for req in policy.requests:
        for v in req.virtual_machines:
            if v.id.lower() == vm_id.lower():
                for p in v.ports:
                    if p.status == "Initiated":
                        yield p


def sync_policy_deny_rules(state: State, policy: JitPolicy) -> None:
    """Every VM entry's deny rules on every NSG of its path: created where missing, updated where
    their ports differ (what Defender does on each write of the policy)."""
    for entry in policy.virtual_machines:
        vm = state.vms.get(entry["id"].lower())
        if vm is not None:
            _sync_deny_rules(state, policy, vm, [p["number"] for p in entry["ports"]])


def put_policy(state: State, rg: str, location: str, name: str, body: Any, *, now: float, sync_deny: bool = True) -> JitPolicy:
    """Create or fully replace a policy and bring the NSG rules in line with it (the deny rules
    later, by the caller, when ``sync_deny`` is false)."""
    group = state.rg(rg)
    if group is None:
        raise rg_not_found(rg)
    pid = policy_id(state.subscription_id, group.name, location, name)
    kind, vms = validate_policy(state, pid, location, body)
    existing = state.policies.get(pid.lower())
    old_vms = {v["id"].lower(): v for v in existing.virtual_machines} if existing else {}
    if existing is None:
        policy = JitPolicy(pid, name, group.name, location, kind, vms)
        policy.requests = _parse_seed_requests(body["properties"].get("requests"), now)
        state.policies[pid.lower()] = policy
    else:
        policy = existing
        policy.kind = kind
        policy.virtual_machines = vms
    new_vms = {v["id"].lower(): v for v in vms}
    for vm_key in old_vms:
        state.vm_policy.pop(vm_key, None)
    for vm_key in new_vms:
        state.vm_policy[vm_key] = pid.lower()
    for vm_key in old_vms:
        vm = state.vms.get(vm_key)
        if vm is None:
            continue
        if vm_key not in new_vms:  # VM taken out of the policy: its deny and allow rules go
            _remove_rules(state, vm, policy.name, "Deny")
            for port in _active_ports(policy, vm.id):
                _delete_allow_rules(state, port)
            continue
        kept = {p["number"] for p in new_vms[vm_key]["ports"]}
        for port in _active_ports(policy, vm.id):
            if port.number not in kept:
                _delete_allow_rules(state, port)
    if sync_deny:
        sync_policy_deny_rules(state, policy)
    _refresh_next_expiry(state)
    return policy


def delete_policy(state: State, policy: JitPolicy) -> None:
    for entry in policy.virtual_machines:
        vm = state.vms.get(entry["id"].lower())
        if vm is None:
            continue
        _remove_rules(state, vm, policy.name, "Deny")
        for port in _active_ports(policy, vm.id):
            _delete_allow_rules(state, port)
    for entry in policy.virtual_machines:
        state.vm_policy.pop(entry["id"].lower(), None)
    del state.policies[policy.id.lower()]


def _parse_seed_requests(raw: Any, now: float) -> list[JitRequest]:
    """Requests given in a creating PUT (as the REST example does) are kept as history."""
    out = []
    for r in raw if isinstance(raw, list) else []:
        if not isinstance(r, dict):
            continue
        vms = []
        for v in r.get("virtualMachines") or []:
            ports = []
            for p in v.get("ports") or []:
                ports.append(
                    JitRequestPort(
                        number=int(p.get("number", 0)),
                        end_time=parse_iso(str(p.get("endTimeUtc"))) or now,
                        status=str(p.get("status") or "Initiated"),
                        status_reason=str(p.get("statusReason") or "UserRequested"),
                        source=p.get("allowedSourceAddressPrefix"),
                        sources=p.get("allowedSourceAddressPrefixes"),
                        applied=True,
                    )
                )
            vms.append(JitRequestVm(str(v.get("id")), ports))
        out.append(JitRequest(parse_iso(str(r.get("startTimeUtc"))) or now, str(r.get("requestor") or "unknown"), r.get("justification"), vms))
    return out


# --- initiate ---------------------------------------------------------------------------------


def _not_subset(policy: JitPolicy, detail: str) -> ArmError:
    return _bad("InvalidInitiateInput", f"The given access request is not a subset of policy '{policy.id}': {detail}")


SOURCE_RULES = ("exact", "subset")
"""How an initiate's source must relate to the port's allowed prefixes (admin /config
``initiate_source_rule``): ``exact`` (default) - one of them (10.0.0.1 equals 10.0.0.1/32), as a
public report shows Azure refusing a source merely inside a policy prefix
(MicrosoftDocs/azure-docs#53026); ``subset`` - inside one of them."""


def _source_allowed(source: str, allowed: list[str], rule: str = "exact") -> bool:
    if "*" in allowed:
        return True
    if source == "*":
        return False
    net = ipaddress.ip_network(source, strict=False)
    for a in allowed:
        try:
            container = ipaddress.ip_network(a, strict=False)
            if net == container or (rule == "subset" and net.subnet_of(container)):  # type: ignore[arg-type]
                return True
        except (ValueError, TypeError):
            continue
    return False


def initiate(state: State, policy: JitPolicy, body: Any, *, caller_ip: str, requestor: str, now: float, source_rule: str = "exact") -> JitRequest:
    if not isinstance(body, dict) or not isinstance(body.get("virtualMachines"), list) or not body["virtualMachines"]:
        raise _bad("InvalidInitiateInput", "The request must contain a non-empty 'virtualMachines' array.")
    policy_vms = {v["id"].lower(): v for v in policy.virtual_machines}
    request_vms = []
    seen_vms: set[str] = set()
    for raw_vm in body["virtualMachines"]:
        if not isinstance(raw_vm, dict) or not isinstance(raw_vm.get("id"), str):
            raise _bad("InvalidInitiateInput", "Every virtual machine of the request needs an 'id'.")
        vm_id = raw_vm["id"]
        entry = policy_vms.get(vm_id.lower())
        if entry is None:
            raise _not_subset(policy, f"virtual machine '{vm_id}' is not in the policy.")
        if vm_id.lower() in seen_vms:
            raise _bad("InvalidInitiateInput", f"Virtual machine '{vm_id}' appears more than once in the request.")
        seen_vms.add(vm_id.lower())
        policy_ports = {p["number"]: p for p in entry["ports"]}
        raw_ports = raw_vm.get("ports")
        if not isinstance(raw_ports, list) or not raw_ports:
            raise _bad("InvalidInitiateInput", f"Virtual machine '{vm_id}': 'ports' must be a non-empty array.")
        ports = []
        for raw in raw_ports:
            number = raw.get("number") if isinstance(raw, dict) else None
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 65535:
                raise _bad("InvalidInitiateInput", f"Virtual machine '{vm_id}': port number '{number}' is invalid. Allowed range is 0-65535.")
            if any(p.number == number for p in ports):
                raise _bad("InvalidInitiateInput", f"Virtual machine '{vm_id}': port {number} appears more than once in the request.")
            rule = policy_ports.get(number)
            if rule is None:
                raise _not_subset(policy, f"port {number} is not configured for virtual machine '{vm_id}'.")
            end = parse_iso(raw.get("endTimeUtc")) if isinstance(raw.get("endTimeUtc"), str) else None
            if end is None:
                raise _bad("InvalidInitiateInput", f"Virtual machine '{vm_id}', port {number}: 'endTimeUtc' is required and must be an ISO 8601 UTC time.")
            if end <= now:
                raise _bad(
                    "InvalidInitiateInput", f"Virtual machine '{vm_id}', port {number}: endTimeUtc '{raw['endTimeUtc']}' is in the past (now {iso(now)})."
                )
            max_seconds = parse_duration(rule["maxRequestAccessDuration"]) or 0
            if end - now > max_seconds + END_TIME_TOLERANCE:
                raise _not_subset(
                    policy,
                    f"the requested duration for port {number} of virtual machine '{vm_id}' exceeds "
                    f"maxRequestAccessDuration {rule['maxRequestAccessDuration']}.",
                )
            single = raw.get("allowedSourceAddressPrefix")
            sources = [single if single is not None else caller_ip]
            allowed = rule.get("allowedSourceAddressPrefixes") or [rule.get("allowedSourceAddressPrefix")]
            for src in sources:
                try:
                    net = None if src == "*" else ipaddress.ip_network(str(src), strict=False)
                except ValueError as exc:
                    raise _bad("InvalidInitiateInput", f"'{src}' is not a valid source address prefix.") from exc
                if net is not None and net.version == 6:
                    raise _bad("InvalidInitiateInput", f"IPv6 source address '{src}' is not supported by Just-in-time network access.")
                if not _source_allowed(str(src), allowed, source_rule):
                    raise _not_subset(
                        policy,
                        f"source '{src}' is not {'one' if source_rule == 'exact' else 'within one'} of the allowed source address prefixes {allowed}"
                        f" of port {number} of virtual machine '{vm_id}'.",
                    )
            port = JitRequestPort(number=number, end_time=end)
            port.source = str(sources[0])
            ports.append(port)
        request_vms.append(JitRequestVm(vm_id, ports))
    justification = body.get("justification")
    req = JitRequest(now, requestor, justification if isinstance(justification, str) else None, request_vms)
    for v in request_vms:  # a newer request for the same VM and port supersedes the older one
        for port in v.ports:
            for old in _active_ports(policy, v.id):
                if old.number == port.number:
                    old.status, old.status_reason = "Revoked", "NewerRequestInitiated"
                    port.superseded.append(old)
    policy.requests.append(req)
    _refresh_next_expiry(state)
    return req


def apply_request(state: State, policy_key: str, req: JitRequest, now: float) -> None:
    """Write the ALLOW rules of an initiated request (called after the apply delay)."""
    policy = state.policies.get(policy_key)
    if policy is None or not any(r is req for r in policy.requests):
        return  # the policy was deleted or armsim was reset meanwhile
    for v in req.virtual_machines:
        vm = state.vms.get(v.id.lower())
        if vm is None:
            continue
        entry = next((e for e in policy.virtual_machines if e["id"].lower() == v.id.lower()), None)
        for port in v.ports:
            for old in port.superseded:
                _delete_allow_rules(state, old)
            if port.status != "Initiated" or port.applied or port.end_time <= now or entry is None:
                continue
            policy_port = next((p for p in entry["ports"] if p["number"] == port.number), None)
            if policy_port is None:
                continue
            protocol = {"TCP": "Tcp", "UDP": "Udp"}.get(policy_port["protocol"], "*")
            for nsg, ips in state.nsg_path(vm):
                if len(nsg.rules) >= network.NSG_RULE_LIMIT or len(nsg.inbound_priorities()) >= 3997:
                    continue  # assumption: Defender cannot add the rule and says nothing (README)
                deny = find_deny_rule(nsg, policy.name, vm, ips)
                priority = allow_priority(nsg, deny.priority if deny is not None else 4097)
                if priority is None:
                    continue  # no free priority before the deny rule: as above (README)
                props: dict[str, Any] = {
                    "description": ALLOW_DESCRIPTION.format(policy=policy.name, vm=vm.name),
                    "protocol": protocol,
                    "sourcePortRange": "*",
                    "destinationPortRange": str(port.number),
                    "access": "Allow",
                    "priority": priority,
                    "direction": "Inbound",
                }
                if port.sources:
                    props["sourceAddressPrefixes"] = list(port.sources)
                else:
                    props["sourceAddressPrefix"] = port.source
                _dest(props, ips)
                rule = Rule(allow_rule_name(policy, vm, port.number), props)
                nsg.rules[rule.name.lower()] = rule
                nsg.touch()
                port.allow_rules.append((nsg.id.lower(), rule.name.lower()))
            port.applied = True


def _refresh_next_expiry(state: State) -> None:
    ends = [p.end_time for pol in state.policies.values() for r in pol.requests for v in r.virtual_machines for p in v.ports if p.status == "Initiated"]
    state.next_expiry = min(ends) if ends else None


def process_expiries(state: State, now: float) -> None:
    """Requests whose endTimeUtc has passed: delete their ALLOW rules, mark them Revoked/Expired."""
    if state.next_expiry is None or now < state.next_expiry:
        return
    for pol in state.policies.values():
        for req in pol.requests:
            for v in req.virtual_machines:
                for port in v.ports:
                    if port.status == "Initiated" and port.end_time <= now:
                        port.status, port.status_reason = "Revoked", "Expired"
                        _delete_allow_rules(state, port)
    _refresh_next_expiry(state)


# --- handlers ---------------------------------------------------------------------------------


def _check_api(ctx: Ctx, location: str = "") -> None:
    if ctx.api_version != API_VERSION:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{location or 'global'}' and API version '{ctx.api_version}' for type "
            f"'jitNetworkAccessPolicies'. The supported api-versions are '{API_VERSION}'.",
        )


def _policies(ctx: Ctx, rg: str | None = None, loc: str | None = None) -> list[JitPolicy]:
    if rg is not None and ctx.state.rg(rg) is None:
        raise rg_not_found(rg)
    return [
        p for p in ctx.state.policies.values() if (rg is None or p.resource_group.lower() == rg.lower()) and (loc is None or p.location.lower() == loc.lower())
    ]


def _render(p: JitPolicy) -> bytes:
    return dumps(policy_json(p))


def list_subscription(ctx: Ctx, **_: str) -> Response:
    _check_api(ctx)
    return ctx.paged(_policies(ctx), _render)


def list_subscription_location(ctx: Ctx, loc: str, **_: str) -> Response:
    _check_api(ctx, loc)
    return ctx.paged(_policies(ctx, loc=loc), _render)


def list_resource_group(ctx: Ctx, rg: str, **_: str) -> Response:
    _check_api(ctx)
    return ctx.paged(_policies(ctx, rg=rg), _render)


def list_resource_group_location(ctx: Ctx, rg: str, loc: str, **_: str) -> Response:
    _check_api(ctx, loc)
    return ctx.paged(_policies(ctx, rg=rg, loc=loc), _render)


def _get(ctx: Ctx, rg: str, loc: str, name: str) -> JitPolicy:
    if ctx.state.rg(rg) is None:
        raise rg_not_found(rg)
    policy = ctx.state.policies.get(policy_id(ctx.state.subscription_id, rg, loc, name).lower())
    if policy is None:
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}' under resource group '{rg}' was not found. "
            "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )
    return policy


def get_policy(ctx: Ctx, rg: str, loc: str, name: str, **_: str) -> Response:
    _check_api(ctx, loc)
    return json_response(policy_json(_get(ctx, rg, loc, name)))


def put_policy_handler(ctx: Ctx, rg: str, loc: str, name: str, **_: str) -> Response:
    _check_api(ctx, loc)
    delayed = ctx.app.deny_apply_delay > 0
    body = schema.security_body(ctx.req.json(), schema.JIT_POLICY)
    pricing.require_jit(ctx.state)
    policy = put_policy(ctx.state, rg, loc, name, body, now=ctx.now, sync_deny=not delayed)
    if delayed:
        ctx.app.schedule_deny_sync(policy.id.lower())
    return json_response(policy_json(policy))


def delete_policy_handler(ctx: Ctx, rg: str, loc: str, name: str, **_: str) -> Response:
    _check_api(ctx, loc)
    if ctx.state.rg(rg) is None:
        raise rg_not_found(rg)
    policy = ctx.state.policies.get(policy_id(ctx.state.subscription_id, rg, loc, name).lower())
    if policy is None:
        return Response(204)
    delete_policy(ctx.state, policy)
    return Response(200)


def requestor_of(principal: Any) -> str:
    """What a request records as its ``requestor``: a user's UPN (the REST example shows
    ``barbara@contoso.com``); for a service principal, which has no UPN and whose app-only token
    carries no name, its object id (undocumented: see README)."""
    return principal.username or principal.object_id


def initiate_handler(ctx: Ctx, rg: str, loc: str, name: str, **_: str) -> Response:
    _check_api(ctx, loc)
    policy = _get(ctx, rg, loc, name)
    body = schema.security_body(ctx.req.json(), schema.JIT_INITIATE)
    pricing.require_jit(ctx.state)
    req = initiate(
        ctx.state, policy, body, caller_ip=ctx.req.client_ip, requestor=requestor_of(ctx.principal), now=ctx.now, source_rule=ctx.app.initiate_source_rule
    )
    ctx.app.schedule_apply(policy.id.lower(), req)
    return json_response(request_json(req), 202)


POLICY = RG + SEC + r"/locations/(?P<loc>[^/]+)/jitNetworkAccessPolicies/(?P<name>[^/]+)"

ROUTES = [
    ("GET", SUB + SEC + r"/jitNetworkAccessPolicies$", list_subscription),
    ("GET", SUB + SEC + r"/locations/(?P<loc>[^/]+)/jitNetworkAccessPolicies$", list_subscription_location),
    ("GET", RG + SEC + r"/jitNetworkAccessPolicies$", list_resource_group),
    ("GET", RG + SEC + r"/locations/(?P<loc>[^/]+)/jitNetworkAccessPolicies$", list_resource_group_location),
    ("GET", POLICY + "$", get_policy),
    ("PUT", POLICY + "$", put_policy_handler),
    ("DELETE", POLICY + "$", delete_policy_handler),
    ("POST", POLICY + r"/initiate$", initiate_handler),
]
