# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure: the ``nsg_jit_facts`` report (coverage, open access, exposure, stale rules, drift).

Input is what the module read in bulk: an :class:`~._topology.Inventory` (VMs, NICs, NSGs,
VNets, public IPs) and the subscription's JIT policies (REST dicts). No SDK imports, no I/O.

Terms used in the report:

* ``jit_status``: ``configured`` (the VM is in a JIT policy), ``not_configured``,
  ``unsupported`` (JIT cannot protect it: ``unsupported_reason`` says why; the VM may still be
  listed in a policy, which is then reported as drift).
* ``exposure``: one entry per NIC and port (the management ports of the VM's OS - Linux 22,
  Windows 3389, 5985, 5986, all four when the OS is unknown - plus the VM's policy ports). The
  subnet NSG then the NIC NSG are evaluated for an arbitrary Internet source with every rule
  present (active JIT allow rules included, Azure's default rules last).
  ``exposed`` needs the NSGs to admit the Internet *and* a public IP on the NIC; when the NSGs
  admit the Internet but the NIC has no public IP the entry is ``private_only`` (reachable only
  through something that forwards traffic: a load balancer, NAT or firewall rule).
* ``jit_bypassed``: a JIT deny rule covers the port on the path, yet with the JIT allow rules
  (access requests) left out the Internet still gets through: an allow rule evaluated before
  the deny rule admits it.
* ``stale_rules``: JIT allow rules without an active request (expired or revoked but still
  present) and JIT deny rules for VMs in no policy (or rules whose destination is no VM).
* ``drift``: a VM in a policy whose JIT deny rule for a policy port is missing on an NSG of its
  path (what Terraform or ``azure_rm_securitygroup`` with ``purge_rules`` do to JIT rules).
"""

from __future__ import annotations

import functools
import ipaddress

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm, _bastion, _jit, _nsg, _request, _topology

MANAGEMENT_PORTS = (22, 3389, 5985, 5986)


def management_ports(os_type):
    """The management ports checked on a VM: its OS's (Linux 22; Windows 3389, 5985, 5986, the
    ports JIT protects by default) or all of them when the OS is unknown. A port another OS uses is
    checked on this one only when its JIT policy lists it (see docs/nsg_jit_facts.md)."""
    return _jit.DEFAULT_PORTS_BY_OS.get(str(os_type or "").lower(), MANAGEMENT_PORTS)


STATUS_CONFIGURED = "configured"
STATUS_NOT_CONFIGURED = "not_configured"
STATUS_UNSUPPORTED = "unsupported"
STATUSES = (STATUS_CONFIGURED, STATUS_NOT_CONFIGURED, STATUS_UNSUPPORTED)

STALE_ALLOW_NO_REQUEST = "JIT allow rule without an active access request (expired or revoked but still present)"
STALE_DENY_NO_POLICY = "JIT deny rule for a VM that is in no JIT policy"
STALE_DENY_PORT_NOT_IN_POLICY = "JIT deny rule for ports that are not in the VM's JIT policy"
STALE_NO_VM = "JIT rule whose destination is no VM on this NSG's path"
DRIFT_DENY_MISSING = "JIT deny rule missing: the port is in the VM's JIT policy but this NSG does not block it"
DRIFT_UNSUPPORTED = "the VM is in a JIT policy but JIT cannot protect it"


# --------------------------------------------------------------------------------------------------
# Scope


def check_tags(tags):
    """Validate the ``tags`` option: a dict of tag name -> value (strings, numbers, booleans)."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise _arm.JitValidationError(f"tags {tags!r} is not valid: expected a dictionary of tag name to value")
    result = {}
    for key, value in tags.items():
        if value is None or isinstance(value, (list, dict)):
            raise _arm.JitValidationError(f"tag {key!r} has value {value!r}: expected a string (the VM must carry this tag with this value)")
        result[str(key)] = _tag_text(value)
    return result


def _tag_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _has_tags(record, wanted):
    tags = {str(key).lower(): _tag_text(value) for key, value in (record.get("tags") or {}).items()}
    return all(tags.get(key.lower()) == value for key, value in wanted.items())


def select_vms(topology, subscription, resource_groups=None, virtual_machines=None, tags=None):
    """Topology records in scope, sorted by resource group then name.

    All filters combine (AND): ``resource_groups`` (names, case-insensitive), ``virtual_machines``
    (``{id}`` or ``{name, resource_group}``; an unknown VM raises
    :class:`~._jit.JitValidationError`), ``tags`` (the VM must carry every tag with that value;
    names case-insensitive, values exact). No filter: every VM of the subscription.
    """
    wanted_tags = check_tags(tags)
    if virtual_machines:
        records = [record for _reference, record in _topology.resolve_vms(virtual_machines, topology, subscription)]
    else:
        records = list(topology.values())
    if resource_groups:
        groups = {str(group).strip().lower() for group in resource_groups}
        records = [record for record in records if str(record["resource_group"]).lower() in groups]
    if wanted_tags:
        records = [record for record in records if _has_tags(record, wanted_tags)]
    return sorted(records, key=lambda record: (str(record["resource_group"]).lower(), str(record["name"]).lower(), _arm.normalize_id(record["id"])))


# --------------------------------------------------------------------------------------------------
# Policies


def policy_summary(policy):
    """``{id, name, resource_group, location}`` of a policy REST dict."""
    policy_id = policy.get("id")
    try:
        key = _arm.parse_jit_policy_id(policy_id)
        group, location, name = key.resource_group, key.location, key.policy_name
    except _arm.JitValidationError:
        group, location, name = None, _arm.normalize_location(policy.get("location") or ""), policy.get("name")
    return {"id": policy_id, "name": name or policy.get("name"), "resource_group": group, "location": location}


def port_facts(entry):
    """Policy ports of a VM entry in user (snake_case) form, sorted by number."""
    result = []
    for port in _arm.as_list(_arm.rest_field(entry, "ports")):
        canonical = _jit.canonical_port(port)
        result.append(
            {
                "number": canonical["number"],
                "protocol": canonical["protocol"],
                "allowed_source_address_prefixes": _jit.port_prefixes(canonical),
                "max_request_access_duration": canonical["maxRequestAccessDuration"],
            }
        )
    return sorted(result, key=_jit.port_sort_key)


def request_facts(requests, closed_early=()):
    """Active requests (``_request.ActiveRequest`` values) as dicts, sorted by port;
    ``closed_early``: the ports whose allow rules were deleted before the request's end."""
    return [
        {
            "port": request.port,
            "closed_early": request.port in closed_early,
            "sources": list(request.sources),
            "start_time_utc": _arm.format_azure_datetime(request.start_time),
            "end_time_utc": _arm.format_azure_datetime(request.end_time),
            "status": request.status,
            "requestor": request.requestor,
            "justification": request.justification,
        }
        for request in sorted(requests, key=lambda item: item.port)
    ]


# --------------------------------------------------------------------------------------------------
# NSGs prepared once for many evaluations


@functools.lru_cache(maxsize=65536)
def _single_address(token):
    """The address text when ``token`` is exactly one IPv4 address (``10.0.0.4`` or ``/32``)."""
    try:
        network = ipaddress.ip_network(token.strip(), strict=False)
    except ValueError:
        return None
    if network.version == 4 and network.prefixlen == 32:
        return str(network.network_address)
    return None


ALL_JIT_ALLOW = object()
"""Marker for :meth:`PreparedNsg.rules_for`: leave out every JIT allow rule."""


def internet_path(nic, subnet_nsg, nic_nsg):
    """Whether the Internet has a way in to the NIC: a public IP, and either an NSG on the path
    (its rules decide) or a public IP that is open without one. A Standard-SKU public IP is closed
    to inbound traffic unless an NSG allows it ("secure by default"); Basic-SKU addresses (retired
    in September 2025) are open. An unknown SKU counts as open: the verdict must not hide exposure.
    """
    if not nic.get("public_ip"):
        return False
    if subnet_nsg is not None or nic_nsg is not None:
        return True
    return str(nic.get("public_ip_sku") or "").lower() != "standard"


class PreparedNsg:
    """An NSG's rules parsed once, with an index by destination address.

    Rules whose destinations are all single addresses only ever match those addresses, so
    evaluating a VM needs just the rules for its address plus the "wide" ones (tags, CIDRs,
    ``*``): same verdicts, and big shared NSGs (one JIT deny rule per VM) stay fast.
    """

    def __init__(self, nsg):
        self.id = nsg.get("id")
        self.name = nsg.get("name")
        self.resource_group = _topology.resource_group_of(self.id) if self.id else None
        self.rules = _nsg.rules_from_nsg(nsg)
        self.jit = {}
        self._wide = []
        self._by_address = {}
        for rule in self.rules:
            if not rule.is_inbound:
                continue
            info = _nsg.classify_jit_rule(rule) if not rule.is_default else None
            if info is not None:
                self.jit[rule.name] = info
            addresses = [_single_address(token) for token in rule.destination_address_prefixes]
            if addresses and all(addresses) and not rule.destination_application_security_groups:
                for address in set(addresses):
                    self._by_address.setdefault(address, []).append(rule)
            else:
                self._wide.append(rule)

    def rules_for(self, address, leave_out=None):
        """Inbound rules that can match destination ``address``, without the rules named in
        ``leave_out`` (a set of names, or :data:`ALL_JIT_ALLOW` for every JIT allow rule)."""
        rules = self._wide + self._by_address.get(str(address), [])
        if leave_out is ALL_JIT_ALLOW:
            return [rule for rule in rules if not self.is_jit_allow(rule.name)]
        if leave_out:
            return [rule for rule in rules if rule.name not in leave_out]
        return rules

    def is_jit_allow(self, name):
        info = self.jit.get(name)
        return info is not None and info.kind == _nsg.JIT_KIND_ALLOW

    def jit_rules_for(self, address, context):
        """JIT rules (rule, info) whose destination includes ``address``, by priority."""
        target = ipaddress.ip_address(address)
        found = []
        for rule in self.rules_for(address):
            info = self.jit.get(rule.name)
            if info is not None and any(context.matches(token, target, destination=True) for token in rule.destination_address_prefixes):
                found.append((rule, info))
        return sorted(found, key=lambda item: (item[0].priority, item[0].name))


def _rule_ref(nsg, rule):
    return {"nsg": nsg.name if nsg else None, "nsg_id": nsg.id if nsg else None, "name": rule.name, "priority": rule.priority}


def _rule_ports(rule):
    """Destination ports: numbers, ``"low-high"`` strings for ranges, sorted by low end."""
    return [low if low == high else f"{low}-{high}" for low, high in sorted(set(rule.destination_ranges))]


def _covering(nsg, address, port, protocol):
    """Identity of the rules of ``nsg`` that can decide ``address``:``port``/``protocol``."""
    if nsg is None:
        return None
    return tuple(id(rule) for rule in nsg.rules_for(address) if rule.covers_port(port) and rule.covers_protocol(protocol))


def _covers(rule, port, protocol):
    return rule.covers_port(port) and rule.covers_protocol(protocol)


def _is_address(value):
    try:
        return ipaddress.ip_address(str(value)).version == 4
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# The report


class _Builder:
    def __init__(self, inventory, policies, now, subscription_id, consume=False):
        self.now = _arm.parse_azure_datetime(now)
        self.subscription_id = subscription_id
        self.topology = _topology.build_topology(inventory)
        if consume:
            inventory.release("virtual_machines", "network_interfaces", "public_ip_addresses")
        self.nsgs = {_arm.normalize_id(nsg.get("id")): PreparedNsg(nsg) for nsg in inventory.network_security_groups}
        if consume:
            inventory.release("network_security_groups")
        self.policies = list(policies)
        self.by_vm = _jit.index_policies(self.policies)
        self.active = {}
        for policy in self.policies:
            for key, request in _request.active_requests(policy, self.now).items():
                current = self.active.get(key)
                if current is None or current.start_time <= request.start_time:
                    self.active[key] = request
        self.networks = _bastion.index_networks(inventory.virtual_networks)
        self.bastions = _bastion.index_bastions(inventory.bastion_hosts, self.networks)
        self._contexts = {}
        self.stale = []
        self.drift = []

    def context(self, prefixes):
        key = tuple(prefixes or ())
        if key not in self._contexts:
            try:
                self._contexts[key] = _nsg.AddressContext(virtual_network=key)
            except _arm.JitValidationError:
                self._contexts[key] = _nsg.AddressContext()
        return self._contexts[key]

    def closed_early(self, requests, jit_rules):
        """Ports of ``requests`` that were closed early: Azure keeps the request ``Initiated`` until
        its end, but no JIT allow rule for the port is left on the path, and the request is past the
        time Defender may take to apply it."""
        allowed = set()
        for fact in jit_rules:
            if fact["kind"] == _nsg.JIT_KIND_ALLOW:
                for item in fact["ports"]:
                    low, _sep, high = str(item).partition("-")
                    allowed.update(range(int(low), int(high or low) + 1))
        return {request.port for request in requests if request.port not in allowed and not _request.may_still_apply(request, self.now)}

    def nsg(self, nsg_id):
        return self.nsgs.get(_arm.normalize_id(nsg_id)) if nsg_id else None

    # -- per VM -----------------------------------------------------------------------------------

    def vm_facts(self, record):
        vm_key = _arm.normalize_id(record["id"])
        memberships = self.by_vm.get(vm_key, [])
        policy, entry = memberships[0] if memberships else (None, None)
        ports = port_facts(entry) if entry is not None else []
        if record["unsupported_reason"]:
            status = STATUS_UNSUPPORTED
        elif memberships:
            status = STATUS_CONFIGURED
        else:
            status = STATUS_NOT_CONFIGURED
        requests = [request for (vm_id, _port), request in self.active.items() if vm_id == vm_key]
        active_ports = {request.port for request in requests}
        policy_port_numbers = {port["number"] for port in ports if isinstance(port["number"], int)}

        nics = []
        jit_rules = []
        seen_rules = {}
        exposure = []
        bastion_checks = []  # per NIC, per NSG on its path, per port: the sources admitted
        hosts = [host for group in _bastion.reachable(record, self.networks, self.bastions) for host in group]
        for nic in record["nics"]:
            nics.append(
                {
                    "name": nic["name"],
                    "id": nic["id"],
                    "private_ip": nic["private_ip"],
                    "subnet_id": nic["subnet_id"],
                    "subnet_nsg": nic["subnet_nsg_id"],
                    "nic_nsg": nic["nic_nsg_id"],
                    "public_ip": nic["public_ip"],
                    "public_ip_id": nic["public_ip_id"],
                    "public_ip_sku": nic.get("public_ip_sku"),
                }
            )
            if not _is_address(nic["private_ip"]):
                continue
            context = self.context(nic["vnet_address_prefixes"])
            levels = ((_nsg.LEVEL_SUBNET, self.nsg(nic["subnet_nsg_id"])), (_nsg.LEVEL_NIC, self.nsg(nic["nic_nsg_id"])))
            denies = []
            active_allow = {}
            for level, nsg in levels:
                if nsg is None:
                    continue
                for rule, info in nsg.jit_rules_for(nic["private_ip"], context):
                    if info.kind == _nsg.JIT_KIND_DENY:
                        denies.append((level, nsg, rule))
                    key = (_arm.normalize_id(nsg.id), rule.name.lower())
                    if key not in seen_rules:
                        fact = self.jit_rule_fact(
                            record, nsg, level, rule, info, active_ports=active_ports, policy_ports=policy_port_numbers, in_policy=bool(memberships)
                        )
                        jit_rules.append(fact)
                        seen_rules[key] = fact
                    if info.kind == _nsg.JIT_KIND_ALLOW and not seen_rules[key]["stale"]:
                        active_allow.setdefault(_arm.normalize_id(nsg.id), set()).add(rule.name)
            if memberships:
                self.check_drift(record, nic, levels, denies=denies, ports=ports)
            checked = self.ports_to_check(ports, record["os_type"])
            if hosts:  # only a VM some Bastion reaches can be reachable only through Bastion
                bastion_checks.append(_bastion.nic_check([nsg for _level, nsg in levels if nsg], nic["private_ip"], checked, context))
            memo = {}
            for port, protocol in checked:
                exposure.append(
                    self.exposure_fact(
                        nic, levels, port, protocol, context=context, denies=denies, active_allow=active_allow, in_policy=port in policy_port_numbers, memo=memo
                    )
                )

        if memberships and record["unsupported_reason"]:
            self.drift.append(
                {
                    "vm_id": record["id"],
                    "vm_name": record["name"],
                    "resource_group": record["resource_group"],
                    "nsg": None,
                    "nsg_id": None,
                    "level": None,
                    "private_ip": None,
                    "missing_ports": sorted(policy_port_numbers),
                    "reason": f"{DRIFT_UNSUPPORTED}: {record['unsupported_reason']}",
                }
            )
        facts = {
            "id": record["id"],
            "name": record["name"],
            "subscription_id": record["subscription_id"],
            "resource_group": record["resource_group"],
            "location": record["location"],
            "os_type": record["os_type"],
            "power_state": record["power_state"],
            "tags": record["tags"],
            "jit_status": status,
            "unsupported_reason": record["unsupported_reason"],
            "policy": policy_summary(policy) if policy is not None else None,
            "ports": ports,
            "active_requests": request_facts(requests, closed_early=self.closed_early(requests, jit_rules)),
            "jit_rules": jit_rules,
            "nics": nics,
            "exposure": exposure,
        }
        facts["bastion_hosts"] = [host.id for host in hosts]
        policy_sources = [source for port in ports for source in port["allowed_source_address_prefixes"]]
        facts["bastion_only"] = _bastion.bastion_only(bastion_checks, policy_sources, exposure, hosts)
        if len(memberships) > 1:
            facts["other_policies"] = [policy_summary(other) for other, _entry in memberships[1:]]
        return facts

    def ports_to_check(self, ports, os_type=None):
        """(port, protocol) pairs: the OS's management ports over TCP plus every policy port (UDP
        ports over UDP, TCP and ``*`` over TCP), sorted by port."""
        wanted = {(port, "TCP") for port in management_ports(os_type)}
        for port in ports:
            if isinstance(port["number"], int):
                wanted.add((port["number"], "UDP" if str(port["protocol"]).upper() == "UDP" else "TCP"))
        return sorted(wanted)

    def jit_rule_fact(self, record, nsg, level, rule, info, *, active_ports, policy_ports, in_policy):
        covered = {port for port in active_ports if rule.covers_port(port)}
        fact = {
            "kind": info.kind,
            "nsg": nsg.name,
            "nsg_id": nsg.id,
            "level": level,
            "name": rule.name,
            "priority": rule.priority,
            "ports": _rule_ports(rule),
            "sources": list(rule.source_address_prefixes),
            "destination": list(rule.destination_address_prefixes),
        }
        if info.kind == _nsg.JIT_KIND_ALLOW:
            stale = not covered
            reason = STALE_ALLOW_NO_REQUEST
        elif not in_policy:
            stale, reason = True, STALE_DENY_NO_POLICY
        else:
            stale = not any(rule.covers_port(port) for port in policy_ports)
            reason = STALE_DENY_PORT_NOT_IN_POLICY
        fact["stale"] = stale
        if stale:
            self.stale.append(
                dict(fact, description=rule.description, vm_id=record["id"], vm_name=record["name"], resource_group=record["resource_group"], reason=reason)
            )
        return fact

    def check_drift(self, record, nic, levels, *, denies, ports):
        for level, nsg in levels:
            if nsg is None:
                continue
            missing = []
            for port in ports:
                number = port["number"]
                if not isinstance(number, int):
                    continue
                protocol = "UDP" if str(port["protocol"]).upper() == "UDP" else "TCP"
                if not any(deny_nsg is nsg and _covers(rule, number, protocol) for _level, deny_nsg, rule in denies):
                    missing.append(number)
            if missing:
                self.drift.append(
                    {
                        "vm_id": record["id"],
                        "vm_name": record["name"],
                        "resource_group": record["resource_group"],
                        "nsg": nsg.name,
                        "nsg_id": nsg.id,
                        "level": level,
                        "private_ip": nic["private_ip"],
                        "missing_ports": sorted(set(missing)),
                        "reason": DRIFT_DENY_MISSING,
                    }
                )

    def exposure_fact(self, nic, levels, port, protocol, *, context, denies, active_allow, in_policy, memo):
        address = nic["private_ip"]
        (subnet_level, subnet_nsg), (nic_level, nic_nsg) = levels

        def leave_out(nsg, mode):
            return ALL_JIT_ALLOW if mode is ALL_JIT_ALLOW else (active_allow.get(_arm.normalize_id(nsg.id)) if mode else None)

        # Ports matched by the same rules at both levels get the same verdicts: evaluate once.
        port_class = (protocol, _covering(subnet_nsg, address, port, protocol), _covering(nic_nsg, address, port, protocol))

        def evaluate(mode=None):
            key = (port_class, "all" if mode is ALL_JIT_ALLOW else mode)
            if key not in memo:
                memo[key] = _evaluate(mode)
            return memo[key]

        def _evaluate(mode):
            return _nsg.evaluate_inbound_path(
                subnet_nsg.rules_for(address, leave_out(subnet_nsg, mode)) if subnet_nsg else None,
                nic_nsg.rules_for(address, leave_out(nic_nsg, mode)) if nic_nsg else None,
                _nsg.INTERNET_SOURCE,
                address,
                port,
                protocol=protocol.capitalize(),
                context=context,
                subnet_nsg=subnet_nsg.name if subnet_nsg else None,
                nic_nsg=nic_nsg.name if nic_nsg else None,
            )

        decision = evaluate()
        by_level = {subnet_level: subnet_nsg, nic_level: nic_nsg}
        deciding = decision.deciding
        protecting = [(level, nsg, rule) for level, nsg, rule in denies if _covers(rule, port, protocol)]
        admits = decision.allowed or decision.partial
        open_by_jit_request = False
        if admits and active_allow:
            without_requests = evaluate("active")
            open_by_jit_request = not (without_requests.allowed or without_requests.partial)
        jit_bypassed = False
        bypass_rules = []
        if protecting:
            baseline = evaluate(ALL_JIT_ALLOW)
            if baseline.allowed or baseline.partial:
                jit_bypassed = True
                for level_decision in baseline.levels:
                    nsg = by_level[level_decision.level]
                    if nsg is None:
                        continue
                    names = list(level_decision.admitting_rules)
                    if level_decision.allowed and level_decision.rule_name:
                        names.insert(0, level_decision.rule_name)
                    for name in names:
                        rule = next((item for item in nsg.rules if item.name == name and item.is_inbound), None)
                        if rule is not None and not rule.is_default:
                            bypass_rules.append(dict(_rule_ref(nsg, rule), level=level_decision.level))
        return {
            "port": port,
            "protocol": protocol,
            "nic": nic["name"],
            "in_policy": in_policy,
            "jit_protected": bool(protecting),
            "internet_allowed": decision.allowed,
            "internet_partial": decision.partial,
            "admitted_prefixes": list(decision.admitted_prefixes),
            "public_ip": nic["public_ip"],
            "public_ip_sku": nic.get("public_ip_sku"),
            "exposed": admits and internet_path(nic, subnet_nsg, nic_nsg),
            "private_only": admits and not internet_path(nic, subnet_nsg, nic_nsg),
            "open_by_jit_request": open_by_jit_request,
            "jit_bypassed": jit_bypassed,
            "bypass_rules": bypass_rules,
            "decided_by": {
                "level": deciding.level if deciding else None,
                "nsg": deciding.nsg if deciding else None,
                "rule": deciding.rule_name if deciding else None,
                "priority": deciding.rule_priority if deciding else None,
                "access": deciding.rule_access if deciding else None,
            },
            "levels": [
                {"level": item.level, "nsg": item.nsg, "allowed": item.allowed, "rule": item.rule_name, "priority": item.rule_priority}
                for item in decision.levels
                if item.present
            ],
        }

    # -- orphans ---------------------------------------------------------------------------------

    def orphan_rules(self):
        """JIT rules on any NSG whose destination is no private IP of a NIC behind that NSG."""
        behind = {}
        for record in self.topology.values():
            for nsg_id, address in _nsg.path_pairs(record):
                if _is_address(address):
                    behind.setdefault(_arm.normalize_id(nsg_id), set()).add(address)
        context = _nsg.AddressContext()
        for key in sorted(self.nsgs):
            nsg = self.nsgs[key]
            addresses = [ipaddress.ip_address(item) for item in sorted(behind.get(key, ()))]
            for rule in sorted(nsg.rules, key=lambda item: (item.priority, item.name)):
                info = nsg.jit.get(rule.name) if rule.is_inbound else None
                if info is None:
                    continue
                if any(context.matches(token, address, destination=True) for token in rule.destination_address_prefixes for address in addresses):
                    continue
                self.stale.append(
                    {
                        "kind": info.kind,
                        "nsg": nsg.name,
                        "nsg_id": nsg.id,
                        "level": None,
                        "name": rule.name,
                        "priority": rule.priority,
                        "ports": _rule_ports(rule),
                        "sources": list(rule.source_address_prefixes),
                        "destination": list(rule.destination_address_prefixes),
                        "description": rule.description,
                        "stale": True,
                        "vm_id": None,
                        "vm_name": info.vm,
                        "resource_group": nsg.resource_group,
                        "reason": STALE_NO_VM,
                    }
                )


class _Counts:
    """The ``summary`` counts, added up one full VM entry at a time (before any trimming)."""

    def __init__(self):
        self.vms = 0
        self.statuses = dict.fromkeys(STATUSES, 0)
        self.reasons = {}
        self.exposed_ports = self.private_only = self.bypassed = 0
        self.exposed_vms = self.bypassed_vms = 0
        self.requests = self.jit_open = self.closed_early = self.bastion_only = 0

    def add(self, vm):
        self.vms += 1
        self.statuses[vm["jit_status"]] += 1
        if vm["unsupported_reason"]:
            self.reasons[vm["unsupported_reason"]] = self.reasons.get(vm["unsupported_reason"], 0) + 1
        exposed = [item for item in vm["exposure"] if item["exposed"] and not item["open_by_jit_request"]]
        self.jit_open += sum(1 for item in vm["exposure"] if item["exposed"] and item["open_by_jit_request"])
        self.exposed_ports += len(exposed)
        self.exposed_vms += bool(exposed)
        self.private_only += sum(1 for item in vm["exposure"] if item["private_only"])
        bypasses = [item for item in vm["exposure"] if item["jit_bypassed"]]
        self.bypassed += len(bypasses)
        self.bypassed_vms += bool(bypasses)
        self.requests += sum(1 for request in vm["active_requests"] if not request.get("closed_early"))
        self.closed_early += sum(1 for request in vm["active_requests"] if request.get("closed_early"))
        self.bastion_only += bool(vm.get("bastion_only"))

    def summary(self, stale, drift, policies):
        return {
            "virtual_machines": self.vms,
            "jit_status": self.statuses,
            "unsupported_reasons": self.reasons,
            "policies": len(policies),
            "active_requests": self.requests,
            "closed_early_requests": self.closed_early,
            "exposed_ports": self.exposed_ports,
            "exposed_virtual_machines": self.exposed_vms,
            "open_by_jit_request_ports": self.jit_open,
            "private_only_open_ports": self.private_only,
            "jit_bypassed_ports": self.bypassed,
            "jit_bypassed_virtual_machines": self.bypassed_vms,
            "stale_rules": len(stale),
            "drift": len(drift),
            "bastion_only_virtual_machines": self.bastion_only,
        }


def _summary(vms, stale, drift, policies):
    counts = _Counts()
    for vm in vms:
        counts.add(vm)
    return counts.summary(stale, drift, policies)


DETAIL_FULL = "full"
DETAIL_SUMMARY = "summary"
DETAILS = (DETAIL_FULL, DETAIL_SUMMARY)
SUMMARY_VM_KEYS = (
    "id",
    "name",
    "subscription_id",
    "resource_group",
    "location",
    "os_type",
    "power_state",
    "tags",
    "jit_status",
    "unsupported_reason",
    "policy",
    "other_policies",
    "bastion_only",
)
"""What a VM entry keeps with ``detail=summary`` (plus the exposure entries that need attention)."""


def is_finding(entry):
    """An exposure entry that needs attention: exposed, open without public IP, or JIT bypassed."""
    return bool(entry["exposed"] or entry["private_only"] or entry["jit_bypassed"])


def summary_entry(vm):
    """A full VM entry cut down for ``detail=summary``: identity and status, and only the exposure
    entries that need attention (:func:`is_finding`); ports, active requests, JIT rules and NICs
    are left out."""
    entry = {key: vm[key] for key in SUMMARY_VM_KEYS if key in vm}
    entry["exposure"] = [item for item in vm["exposure"] if is_finding(item)]
    return entry


def _subscription_of(resource_id):
    try:
        return _arm.parse_resource_id(resource_id).subscription.lower()
    except _arm.JitValidationError:
        return ""


def build_facts(
    inventory, policies, now, subscription_id, *, resource_groups=None, virtual_machines=None, tags=None, detail=DETAIL_FULL, subscriptions=None, consume=False
):
    """The ``azure_jit`` fact: ``subscription_id``, ``subscription_ids``, ``generated_at``,
    ``scope``, ``virtual_machines``, ``policies``, ``stale_rules``, ``drift`` and ``summary``
    (with ``summary.subscriptions``: the same counts per subscription).

    ``inventory``: an :class:`~._topology.Inventory` of ``subscriptions`` (default: just
    ``subscription_id``, the one VMs named without an id are in); ``policies``: JIT policy REST
    dicts (every policy of those subscriptions); ``now``: the current time (aware datetime or ISO string).
    ``detail``: ``full`` (every key of every VM) or ``summary`` (VM entries cut down with
    :func:`summary_entry`; everything else, the counts included, is the same).
    ``consume``: empty the inventory's VM, NIC, public IP and NSG lists as soon as they are indexed
    (:meth:`~._topology.Inventory.release`): the facts then reuse their memory.
    Raises :class:`~._jit.JitValidationError` for a bad scope (unknown VM, bad tags or detail).
    """
    if detail not in DETAILS:
        raise _arm.JitValidationError(f"detail {detail!r} is not valid: expected one of {', '.join(DETAILS)}")
    builder = _Builder(inventory, policies, now, subscription_id, consume=consume)
    selected = select_vms(builder.topology, subscription_id, resource_groups, virtual_machines, tags)
    subscriptions = list(subscriptions or [subscription_id])
    counts = _Counts()
    per_subscription = {sub.lower(): (sub, _Counts()) for sub in subscriptions}
    vms = []
    for record in selected:
        vm = builder.vm_facts(record)
        counts.add(vm)
        per_subscription.setdefault(vm["subscription_id"].lower(), (vm["subscription_id"], _Counts()))[1].add(vm)
        vms.append(vm if detail == DETAIL_FULL else summary_entry(vm))
    whole_subscription = not (resource_groups or virtual_machines or tags)
    if whole_subscription:
        builder.orphan_rules()
    in_scope = {_arm.normalize_id(vm["policy"]["id"]) for vm in vms if vm["policy"]}
    listed = builder.policies if whole_subscription else [policy for policy in builder.policies if _arm.normalize_id(policy.get("id") or "") in in_scope]
    policy_facts = []
    for policy in sorted(listed, key=lambda item: _arm.normalize_id(item.get("id") or "")):
        fact = policy_summary(policy)
        fact["virtual_machines"] = len(_jit.policy_vm_entries(policy))
        policy_facts.append(fact)
    summary = counts.summary(builder.stale, builder.drift, policy_facts)
    summary["subscriptions"] = {
        sub: sub_counts.summary(
            [item for item in builder.stale if _subscription_of(item.get("nsg_id") or item.get("vm_id") or "") == key],
            [item for item in builder.drift if _subscription_of(item.get("vm_id") or "") == key],
            [policy for policy in policy_facts if _subscription_of(policy["id"] or "") == key],
        )
        for key, (sub, sub_counts) in per_subscription.items()
    }
    return {
        "subscription_id": subscription_id,
        "subscription_ids": [sub for sub, _counts in per_subscription.values()],
        "generated_at": _arm.format_azure_datetime(builder.now.replace(microsecond=0)),
        "scope": {
            "resource_groups": list(resource_groups or []),
            "virtual_machines": [_arm.vm_id_from_reference(item, subscription_id) for item in virtual_machines or []],
            "tags": check_tags(tags),
            "whole_subscription": whole_subscription,
        },
        "virtual_machines": vms,
        "policies": policy_facts,
        "stale_rules": builder.stale,
        "drift": builder.drift,
        "summary": summary,
    }
