# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the jit_fleet role: candidate selection, the rollout report and its documents.

They do in one Python pass over the fleet what Jinja loops did in tens of seconds at 10,000 VMs.
Documentation: ``jit_fleet_selection.yml``, ``jit_fleet_report.yml`` and
``jit_fleet_report_documents.yml`` beside this file.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.jitaccess.azure.plugins.module_utils._report_html import exposure_state, report_html
from ansible_collections.jitaccess.azure.plugins.module_utils._topology import load_facts


def _text(value):
    return "" if value is None else str(value)


def _glob_re(pattern):
    """``*`` any text, ``?`` one character, everything else literal; whole name, case-insensitive."""
    return re.compile("^" + re.escape(_text(pattern)).replace("\\*", ".*").replace("\\?", ".") + "$", re.IGNORECASE)


def _mapping(value, name):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("%s must be a dictionary, got %r" % (name, value))
    return value


def _fleet_facts(value, name):
    """nsg_jit_facts' ``azure_jit`` fact; when the task wrote it to its ``facts_file`` (the result then
    names the file and lacks the fleet-sized lists), the whole fact read from that file."""
    value = _mapping(value, name)
    if value.get("facts_file") and "virtual_machines" not in value:
        try:
            return load_facts(_text(value["facts_file"]))
        except ValueError as exc:
            raise AnsibleFilterError("%s: %s (the facts_file of nsg_jit_facts, which must run on the controller)" % (name, exc)) from None
    return value


def _ports(os_ports, protocol, prefixes, duration):
    ports = []
    for item in os_ports:
        port = item if isinstance(item, Mapping) else {"number": item}
        try:
            number = int(port.get("number"))
        except (TypeError, ValueError):
            raise AnsibleFilterError("jit_fleet_ports: port %r is not a number" % (port.get("number"),)) from None
        ports.append(
            {
                "number": number,
                "protocol": port.get("protocol", protocol),
                "allowed_source_address_prefixes": port.get("allowed_source_address_prefixes", prefixes),
                "max_request_access_duration": port.get("max_request_access_duration", duration),
            }
        )
    return ports


def jit_fleet_selection(  # noqa: PLR0913, PLR0917 - one argument per role variable
    virtual_machines,
    include_tags=None,
    exclude_tags=None,
    name_patterns=None,
    exclude_name_patterns=None,
    ports=None,
    protocol="TCP",
    allowed_source_address_prefixes=("*",),
    max_request_access_duration="PT3H",
    update_configured=False,
    drift=None,
    stale_rules=None,
    subscriptions_without_jit=None,
):
    """``{candidates, ports_by_os_type, already_configured, skipped, drifted}`` from nsg_jit_facts VM
    entries (and its ``drift`` list: ``drifted`` are the VMs under JIT, in scope and not already
    candidates, whose deny rules another tool deleted - jit_policy repairs them).

    Candidates are ``{"id"}`` only and ``ports_by_os_type`` holds the port rules of each OS type
    among them: jit_policy takes both, which keeps its arguments (and Ansible's copies of them)
    small on a fleet of thousands.
    """
    if isinstance(virtual_machines, Mapping):  # the whole fact (or a result naming its facts_file)
        facts = _fleet_facts(virtual_machines, "jit_fleet_selection")
        virtual_machines = facts.get("virtual_machines")
        drift = facts.get("drift") if drift is None else drift
        stale_rules = facts.get("stale_rules") if stale_rules is None else stale_rules
    include_tags = _mapping(include_tags, "jit_fleet_include_tags")
    exclude_tags = _mapping(exclude_tags, "jit_fleet_exclude_tags")
    per_os = {_text(key).lower(): value or [] for key, value in _mapping(ports, "jit_fleet_ports").items()}
    name_patterns = list(name_patterns or [])
    exclude_name_patterns = list(exclude_name_patterns or [])
    include_res = [_glob_re(pattern) for pattern in name_patterns]
    exclude_res = [(pattern, _glob_re(pattern)) for pattern in exclude_name_patterns]
    prefixes = list(allowed_source_address_prefixes or [])
    os_port_lists = {}
    no_jit = {_text(sub).lower() for sub in subscriptions_without_jit or []}
    candidates, configured, skipped = [], [], []
    for vm in virtual_machines or []:
        name = _text(vm.get("name"))
        status = vm.get("jit_status")
        tags = {_text(key).lower(): _text(value) for key, value in (vm.get("tags") or {}).items()}
        reasons = []
        if _subscription_of(vm.get("id")).lower() in no_jit:
            reasons.append("subscription %s has no Defender for Servers Plan 2: JIT is not available there" % _subscription_of(vm.get("id")))
        if status == "unsupported":
            reasons.append("unsupported: " + (vm.get("unsupported_reason") or "JIT cannot protect this VM"))
        for key, value in include_tags.items():
            wanted = _text(value)
            if _text(key).lower() not in tags or (wanted != "*" and tags[_text(key).lower()] != wanted):
                reasons.append("lacks required tag %s=%s" % (key, value))
        for key, value in exclude_tags.items():
            unwanted = _text(value)
            if _text(key).lower() in tags and (unwanted == "*" or tags[_text(key).lower()] == unwanted):
                reasons.append("excluded by tag %s=%s" % (key, tags[_text(key).lower()]))
        if include_res and not any(regex.match(name) for regex in include_res):
            reasons.append("name matches none of " + ", ".join(_text(pattern) for pattern in name_patterns))
        for pattern, regex in exclude_res:
            if regex.match(name):
                reasons.append("name excluded by pattern %s" % pattern)
        os_type = vm.get("os_type") or ""
        os_ports = per_os.get(os_type.lower(), [])
        if not reasons and len(os_ports) == 0:
            reasons.append("no ports configured for OS type %s in jit_fleet_ports" % (os_type or "unknown"))
        if reasons:
            skipped.append(
                {
                    "id": vm.get("id"),
                    "name": vm.get("name"),
                    "resource_group": vm.get("resource_group"),
                    "os_type": vm.get("os_type"),
                    "jit_status": status,
                    "reason": "; ".join(reasons),
                }
            )
        elif status == "configured" and not update_configured:
            configured.append({"id": vm.get("id"), "name": vm.get("name"), "resource_group": vm.get("resource_group")})
        else:
            key = os_type.lower()
            if key not in os_port_lists:
                os_port_lists[key] = _ports(os_ports, protocol, prefixes, max_request_access_duration)
            candidates.append({"id": vm.get("id")})
    # Only VMs in scope (never one that a filter excluded), each once.
    configured_ids = {_text(vm.get("id")).lower() for vm in configured}
    drifted = _vm_refs(item.get("vm_id") for item in drift or [] if _text(item.get("vm_id")).lower() in configured_ids)
    in_scope = configured_ids | {_text(vm["id"]).lower() for vm in candidates}
    stale_allow = _vm_refs(rule.get("vm_id") for rule in stale_rules or [] if rule.get("kind") == "allow" and _text(rule.get("vm_id")).lower() in in_scope)
    return {
        "candidates": candidates,
        "ports_by_os_type": os_port_lists,
        "already_configured": configured,
        "skipped": skipped,
        "drifted": drifted,
        "stale_allow": stale_allow,
    }


def _vm_refs(vm_ids):
    """``[{"id"}]`` for each VM id, once (case-insensitively), in first-seen order."""
    seen = {}
    for vm_id in vm_ids:
        seen.setdefault(_text(vm_id).lower(), vm_id)
    return [{"id": vm_id} for vm_id in seen.values()]


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _coverage(facts):
    return _summary_coverage(facts.get("summary") or {}, len(facts.get("virtual_machines") or []))


def _subscription_coverage(before, after):
    """``{subscription id: {before, after}}`` from the facts' per-subscription summaries."""
    before_subs = (before.get("summary") or {}).get("subscriptions") or {}
    after_subs = (after.get("summary") or {}).get("subscriptions") or {}
    return {
        sub: {"before": _summary_coverage(before_subs.get(sub) or {}), "after": _summary_coverage(after_subs.get(sub) or before_subs.get(sub) or {})}
        for sub in sorted(set(before_subs) | set(after_subs), key=str.lower)
    }


def _subscription_of(resource_id):
    parts = _text(resource_id).split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""


def _summary_coverage(summary, vms=0):
    status = summary.get("jit_status") or {}
    configured = _int(status.get("configured", 0))
    not_configured = _int(status.get("not_configured", 0))
    eligible = configured + not_configured
    return {
        "virtual_machines": _int(summary.get("virtual_machines", vms)),
        "configured": configured,
        "not_configured": not_configured,
        "unsupported": _int(status.get("unsupported", 0)),
        "eligible": eligible,
        "percent": round(100.0 * configured / eligible, 1) if eligible > 0 else 100.0,
    }


def _group_coverage(before, after, candidates, key_of, audit):
    """``[{key fields..., before, after[, would_be]}]``: coverage per group of VMs (resource group,
    region) counted from the VM entries, sorted by key; ``would_be`` (audit) adds the candidates."""
    counts = {}
    for moment, facts in (("before", before), ("after", after)):
        for vm in facts.get("virtual_machines") or []:
            key = key_of(vm)
            status = counts.setdefault(tuple(_text(part).lower() for part in key.values()), (key, {"before": {}, "after": {}}))[1][moment]
            status[vm.get("jit_status")] = status.get(vm.get("jit_status"), 0) + 1
    added = {}
    for vm in candidates:
        if vm.get("jit_status_before") == "not_configured":
            group = tuple(_text(part).lower() for part in key_of(vm).values())
            added[group] = added.get(group, 0) + 1
    result = []
    for group in sorted(counts):
        key, moments = counts[group]
        entry = dict(key, before=_status_coverage(moments["before"]), after=_status_coverage(moments["after"]))
        if audit:
            would = dict(moments["before"])
            would["configured"] = would.get("configured", 0) + added.get(group, 0)
            would["not_configured"] = max(would.get("not_configured", 0) - added.get(group, 0), 0)
            entry["would_be"] = _status_coverage(would)
        result.append(entry)
    return result


def _status_coverage(status):
    return _summary_coverage({"virtual_machines": sum(status.values()), "jit_status": status})


def _run_metadata(before, after, candidates, check_mode, user, host):  # noqa: PLR0917
    """Who ran it, where, in check mode or not, and how many VMs it put under JIT (read after)."""
    after_status = {_text(vm.get("id")).lower(): vm.get("jit_status") for vm in after.get("virtual_machines") or []} if after is not before else {}
    added = sum(1 for vm in candidates if vm["jit_status_before"] != "configured" and after_status.get(_text(vm["id"]).lower()) == "configured")
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container without a passwd entry)
            user = ""
    return {"user": user, "host": socket.gethostname() if host is None else host, "check_mode": bool(check_mode), "virtual_machines_added": added}


def jit_fleet_report(  # noqa: PLR0913, PLR0917
    selection,
    before,
    after=None,
    apply=None,
    mode="audit",
    policy_name="default",
    scope=None,
    settings=None,
    stale_close=None,
    check_mode=False,
    user=None,
    host=None,
):
    """The rollout report (what ``<report_dir>/<report_name>.json`` holds)."""
    before = _fleet_facts(before, "before")
    after = _fleet_facts(after, "after") or before
    apply = _mapping(apply, "apply")
    selection = _mapping(selection, "selection")
    by_id = {_text(vm.get("id")).lower(): vm for vm in before.get("virtual_machines") or []}
    ports_by_os_type = {_text(key).lower(): [port.get("number") for port in ports or []] for key, ports in (selection.get("ports_by_os_type") or {}).items()}
    candidates = []
    for item in selection.get("candidates") or []:
        vm = by_id.get(_text(item.get("id")).lower())
        if vm is None:
            raise AnsibleFilterError("jit_fleet_report: candidate %s is not among the VMs read before" % item.get("id"))
        candidates.append(
            {
                "id": vm.get("id"),
                "name": vm.get("name"),
                "subscription_id": _subscription_of(vm.get("id")),
                "resource_group": vm.get("resource_group"),
                "location": vm.get("location"),
                "os_type": vm.get("os_type"),
                "jit_status_before": vm.get("jit_status"),
                "ports": ports_by_os_type.get(_text(vm.get("os_type")).lower(), []),
            }
        )
    policies = [
        {
            "id": policy.get("id"),
            "resource_group": policy.get("resource_group"),
            "location": policy.get("location"),
            "action": policy.get("action", "unchanged"),
            "changed": policy.get("changed", False),
            "changes": policy.get("changes", {}),
            "virtual_machines": policy.get("virtual_machine_count", len(policy.get("virtual_machines", []))),
        }
        for policy in apply.get("policies") or []
    ]
    enabled = list(apply.get("defender_for_servers_enabled") or [])
    exposures, bypasses = [], []
    for vm in after.get("virtual_machines") or []:
        public_ips = {nic.get("name"): nic.get("public_ip") for nic in vm.get("nics") or []}
        for entry in vm.get("exposure") or []:
            where = {
                "vm": vm.get("name"),
                "subscription_id": _subscription_of(vm.get("id")),
                "resource_group": vm.get("resource_group"),
                "id": vm.get("id"),
                "port": entry.get("port"),
                "nic": entry.get("nic"),
            }
            if entry.get("exposed", False) or entry.get("private_only", False):
                exposures.append(
                    {
                        **where,
                        "public_ip": entry["public_ip"] if "public_ip" in entry else public_ips.get(entry.get("nic")),
                        "private_only": entry.get("private_only", False),
                        "whole_internet": entry.get("internet_allowed", False),
                        "admitted_prefixes": entry.get("admitted_prefixes", []),
                        "jit_protected": entry.get("jit_protected", False),
                        "jit_bypassed": entry.get("jit_bypassed", False),
                        "open_by_jit_request": entry.get("open_by_jit_request", False),
                        "decided_by": entry.get("decided_by", {}),
                    }
                )
            if entry.get("jit_bypassed", False):
                bypasses.append(
                    {
                        **where,
                        "bypass_rules": entry.get("bypass_rules", []),
                        "admitted_prefixes": entry.get("admitted_prefixes", []),
                        "whole_internet": entry.get("whole_internet", False),
                        "exposed": entry.get("exposed", False),
                        "private_only": entry.get("private_only", False),
                    }
                )
    coverage = {"before": _coverage(before), "after": _coverage(after)}
    if mode == "audit":  # what enforce would give: every candidate under JIT
        would = dict(coverage["before"])
        added = sum(1 for vm in candidates if vm["jit_status_before"] == "not_configured")
        would["configured"] = _int(would.get("configured")) + added
        would["not_configured"] = max(_int(would.get("not_configured")) - added, 0)
        eligible = _int(would.get("eligible"))
        would["percent"] = round(100.0 * would["configured"] / eligible, 1) if eligible else 100.0
        coverage["would_be"] = would
    return {
        "generated_at": after.get("generated_at", before.get("generated_at", "")),
        "mode": mode,
        "policy_name": policy_name,
        "subscription_id": before.get("subscription_id", ""),
        "subscription_ids": list(before.get("subscription_ids") or [before.get("subscription_id", "")]),
        "scope": dict(scope or {}),
        "settings": dict(settings or {}),
        "coverage": coverage,
        "coverage_text": _coverage_text(coverage),
        "coverage_by_subscription": _subscription_coverage(before, after),
        "coverage_by_resource_group": _group_coverage(
            before,
            after,
            candidates,
            lambda vm: {"subscription_id": _subscription_of(vm.get("id")), "resource_group": vm.get("resource_group")},
            mode == "audit",
        ),
        "coverage_by_region": _group_coverage(before, after, candidates, lambda vm: {"region": vm.get("location")}, mode == "audit"),
        "run": _run_metadata(before, after, candidates, check_mode, user, host),
        "candidates": candidates,
        "already_configured": selection.get("already_configured") or [],
        "changed": bool(apply.get("changed", False)) and not apply.get("skipped", False),
        "policies_written": sum(1 for policy in policies if policy["changed"]),
        "policies": policies,
        "exposures": exposures,
        "exposure_counts": exposure_counts(exposures),
        "bypasses": bypasses,
        "skipped": selection.get("skipped") or [],
        "stale_rules": len(after.get("stale_rules") or []),
        "drift": after.get("drift") or [],
        "drift_repair": _drift_repair(before, apply, mode),
        "stale_allow_rules_removed": [
            {"vm_name": item.get("vm_name"), "port": item.get("port"), "rule": rule.get("name"), "nsg": _text(rule.get("nsg_id")).rsplit("/", 1)[-1]}
            for item in _mapping(stale_close, "stale_close").get("closed") or []
            for rule in item.get("nsg_rules") or []
        ],
        "summary_before": before.get("summary"),
        "summary_after": after.get("summary"),
        "defender_for_servers": {
            "plans": before.get("defender_for_servers") or [],
            "without_jit": [sub for sub in (before.get("summary") or {}).get("subscriptions_without_jit") or [] if sub not in enabled],
            "enabled_by_this_run": enabled,
        },
    }


def _drift_repair(before, apply, mode):
    """What became of the deny rules missing before the run: ``{action, rules}`` - ``repaired`` (by
    jit_policy in enforce mode, from its ``repaired`` result) or ``would repair`` (audit: the drift
    read before), one entry per VM, NSG and private IP."""
    if mode == "enforce":
        rules = [_repair_entry(item) for item in apply.get("repaired") or []]
        return {"action": "repaired", "rules": rules}
    return {"action": "would repair", "rules": [_repair_entry(item) for item in before.get("drift") or []]}


def _repair_entry(item):
    return {
        "vm": item.get("vm_name"),
        "id": item.get("vm_id"),
        "nsg": _text(item.get("nsg_id") or item.get("nsg")).rsplit("/", 1)[-1],
        "private_ip": item.get("private_ip"),
        "ports": item.get("missing_ports") or [],
    }


def _cell(value):
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return _text(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _row(*cells):
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _coverage_text(coverage):
    """``0/40 eligible VMs under JIT before, 40/40 after (100.0%)``; in audit mode what enforce would
    give instead of an unchanged "after"."""
    before = coverage.get("before") or {}
    text = "%s/%s eligible VMs under JIT before, " % (before.get("configured"), before.get("eligible"))
    would = coverage.get("would_be")
    if would is not None:
        return text + "would be %s/%s with jit_fleet_mode=enforce (%s%%)" % (would.get("configured"), would.get("eligible"), would.get("percent"))
    after = coverage.get("after") or {}
    return text + "%s/%s after (%s%%)" % (after.get("configured"), after.get("eligible"), after.get("percent"))


def _pairs(count):
    count = count or {}
    pairs, vms = _int(count.get("pairs")), _int(count.get("virtual_machines"))
    return "%d (VM, port) pair%s on %d VM%s" % (pairs, "" if pairs == 1 else "s", vms, "" if vms == 1 else "s")


def _where(entry):
    return "%s (%s)" % (_text(entry.get("vm")), _text(entry.get("resource_group")))


def _deciding_rule(entry):
    decided = entry.get("decided_by") or {}
    if not decided.get("nsg"):
        return "no NSG"
    return "%s @ %s" % (_text(decided.get("rule")), _text(decided["nsg"]))


def exposure_counts(exposures):
    """``{"internet", "inside_network"}``: each ``{"pairs", "virtual_machines"}`` - the one way every
    output counts exposure: (VM, port) pairs, and the VMs they are on."""
    result = {}
    for key, private in (("internet", False), ("inside_network", True)):
        chosen = [e for e in exposures or [] if bool(e.get("private_only")) == private]
        result[key] = {"pairs": len(chosen), "virtual_machines": len({_text(e.get("id")).lower() for e in chosen})}
        result[key]["text"] = _pairs(result[key])
    return result


def _table(lines, header, rows, empty="None."):
    if not rows:
        lines.append(empty)
        return
    lines.append(_row(*header))
    lines.append("|" + "|".join("---:" if title in ("VMs", "port") else "---" for title in header) + "|")
    lines.extend(rows)


def report_markdown(report):
    """The human-readable page of a jit_fleet report (what ``<report_name>.md`` holds)."""
    r = _mapping(report, "report")
    coverage = r.get("coverage") or {}
    candidates, exposures, bypasses = r.get("candidates") or [], r.get("exposures") or [], r.get("bypasses") or []
    skipped, policies, written = r.get("skipped") or [], r.get("policies") or [], _int(r.get("policies_written"))
    audit = r.get("mode") == "audit"
    subscriptions = r.get("subscription_ids") or [r.get("subscription_id")]
    where = ("subscription " if len(subscriptions) == 1 else "subscriptions ") + ", ".join("`%s`" % _text(sub) for sub in subscriptions)
    lines = [
        "# JIT fleet report — %s" % _text(r.get("mode")),
        "",
        "Generated %s for %s, policy name `%s`." % (_text(r.get("generated_at")), where, _text(r.get("policy_name"))),
    ]
    if audit:
        lines.append("Audit mode: nothing was written to Azure. %d VM(s) would be put under JIT by `jit_fleet_mode: enforce`." % len(candidates))
    else:
        lines.append("Enforce mode: %d JIT polic%s written%s." % (written, "y" if written == 1 else "ies", " (nothing to change)" if written == 0 else ""))
    plans = r.get("defender_for_servers") or {}
    for sub in plans.get("without_jit") or []:
        lines.append(
            "**Subscription `%s` cannot have JIT**: Microsoft Defender for Servers Plan 2 is not enabled; its VMs were skipped."
            " `jit_fleet_enable_defender_for_servers: true` turns it on (billed per server)." % _text(sub)
        )
    for sub in plans.get("enabled_by_this_run") or []:
        lines.append("**Defender for Servers Plan 2 was turned on for subscription `%s` by this run: it is billed per server.**" % _text(sub))
    lines += ["", "## Coverage", "", "| | VMs | under JIT | not under JIT | unsupported | coverage of eligible VMs |", "|---|---:|---:|---:|---:|---:|"]
    for moment in ("before", "would_be" if audit and coverage.get("would_be") else "after"):
        c = coverage.get(moment) or {}
        label = "would be, with enforce" if moment == "would_be" else moment
        lines.append(
            _row(label, c.get("virtual_machines"), c.get("configured"), c.get("not_configured"), c.get("unsupported"), "%s%%" % _text(c.get("percent")))
        )
    by_subscription = r.get("coverage_by_subscription") or {}
    if len(by_subscription) > 1:
        lines += ["", "### Per subscription", ""]
        rows = []
        for sub, moments in by_subscription.items():
            before, after = moments.get("before") or {}, moments.get("after") or {}
            percent = "%s%%" % _text(after.get("percent"))
            rows.append(_row(sub, after.get("virtual_machines"), before.get("configured"), after.get("configured"), after.get("eligible"), percent))
        _table(lines, ("subscription", "VMs", "under JIT before", "under JIT after", "eligible", "coverage after"), rows)
    lines += ["", "## %s (%d)" % ("Would be put under JIT" if audit else "Put under JIT", len(candidates)), ""]
    rows = [_row(vm.get("name"), vm.get("resource_group"), vm.get("os_type"), ", ".join(_text(port) for port in vm.get("ports") or [])) for vm in candidates]
    _table(lines, ("VM", "resource group", "OS", "ports"), rows)
    if policies:
        lines += ["", "### Policies", ""]
        rows = []
        for policy in policies:
            name = _text(policy.get("id")).rsplit("/", 1)[-1]
            rows.append(_row(name, policy.get("resource_group"), policy.get("location"), policy.get("action"), policy.get("virtual_machines")))
        _table(lines, ("policy", "resource group", "region", "action", "VMs"), rows)
    counts = r.get("exposure_counts") or exposure_counts(exposures)
    internet = [e for e in exposures if not e.get("private_only")]
    inside = [e for e in exposures if e.get("private_only")]
    lines += ["", "## Reachable from the Internet: %s" % _pairs(counts.get("internet")), ""]
    rows = []
    for e in internet:
        sources = "any Internet address" if e.get("whole_internet") else ", ".join(_text(item) for item in e.get("admitted_prefixes") or [])
        rows.append(_row(_where(e), e.get("port"), sources, e.get("public_ip"), _deciding_rule(e), exposure_state(e)))
    _table(lines, ("VM", "port", "admitted from", "public IP", "deciding rule", "JIT"), rows, empty="No management port is reachable from the Internet.")
    lines += ["", "## Open to any source inside the network: %s" % _pairs(counts.get("inside_network")), ""]
    if inside:
        lines += [
            "The NSGs admit any source, but the Internet has no way in (no public IP, or a Standard public IP and no NSG):"
            " anything inside the network, or a load balancer, NAT or firewall that forwards to the VM, can reach the port.",
            "",
        ]
    rows = [
        _row(_where(e), e.get("port"), "Standard public IP, no NSG" if e.get("public_ip") else "no public IP", _deciding_rule(e), exposure_state(e))
        for e in inside
    ]
    _table(lines, ("VM", "port", "why not from the Internet", "deciding rule", "JIT"), rows)
    lines += ["", "## JIT bypasses (%d)" % len(bypasses), ""]
    if bypasses:
        lines += [
            "JIT protects these ports, but an allow rule evaluated before the JIT deny rule admits traffic anyway: from the Internet"
            " where the VM has a public path, else from inside the network. Remove or narrow the rule.",
            "",
        ]
    rows = []
    for b in bypasses:
        rules = ", ".join("%s (priority %s on %s)" % (_text(x.get("name")), _text(x.get("priority")), _text(x.get("nsg"))) for x in b.get("bypass_rules") or [])
        rows.append(_row("%s (%s)" % (_text(b.get("vm")), _text(b.get("resource_group"))), b.get("port"), rules))
    _table(lines, ("VM", "port", "bypassing rule(s)"), rows)
    lines += ["", "## Skipped VMs (%d)" % len(skipped), ""]
    _table(lines, ("VM", "resource group", "reason"), [_row(vm.get("name"), vm.get("resource_group"), vm.get("reason")) for vm in skipped])
    if r.get("already_configured"):
        lines += [
            "",
            "Already under JIT and left as they are (`jit_fleet_update_configured: false`): %d VM(s)." % len(r["already_configured"]),
        ]
    repair = r.get("drift_repair") or {}
    if r.get("drift") or r.get("stale_rules") or repair.get("rules"):
        lines += ["", "## Drift", ""]
        if repair.get("rules"):
            lines += ["JIT deny rules that another tool deleted, %s by writing their policy again:" % _text(repair.get("action")), ""]
            rows = [
                _row(rule.get("vm"), rule.get("nsg"), rule.get("private_ip"), ", ".join(_text(port) for port in rule.get("ports") or []))
                for rule in repair["rules"]
            ]
            _table(lines, ("VM", "NSG", "private IP", "ports"), rows)
            lines.append("")
        lines.append("- JIT deny rules still missing (deleted by another tool): %d" % len(r.get("drift") or []))
        lines.append("- Stale JIT rules: %s" % _text(r.get("stale_rules")))
    removed = r.get("stale_allow_rules_removed")
    if removed:
        lines += ["", "## Stale JIT allow rules removed (%d)" % len(removed), ""]
        _table(lines, ("VM", "port", "rule", "NSG"), [_row(item.get("vm_name"), item.get("port"), item.get("rule"), item.get("nsg")) for item in removed])
    return "\n".join(lines) + "\n"


def jit_fleet_report_documents(report):
    """``{json, markdown, html}``: the report as indented JSON, as a Markdown page and as a
    self-contained HTML page, in one pass (the role writes all three; rendering them with
    ``to_nice_json`` and a template cost seconds each at 10,000 VMs)."""
    report = _mapping(report, "report")
    return {
        "json": json.dumps(report, indent=2, sort_keys=True, default=_text) + "\n",
        "markdown": report_markdown(report),
        "html": report_html(report),
    }


class FilterModule:
    """jit_fleet role filters."""

    def filters(self):
        return {"jit_fleet_selection": jit_fleet_selection, "jit_fleet_report": jit_fleet_report, "jit_fleet_report_documents": jit_fleet_report_documents}
