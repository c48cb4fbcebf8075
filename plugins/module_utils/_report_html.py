# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The jit_fleet report as one self-contained HTML page (``<report_name>.html``).

Pure: a report dict in, text out. Inline CSS and JS only, the chart as inline SVG, and a
Content-Security-Policy that forbids every fetch. Every value from Azure is HTML-escaped; the JSON
embedded for the lists shown on demand has ``<``, ``>`` and ``&`` escaped so that no value can
close its ``<script>``. VMs that need no attention (candidates, skipped) are not in the DOM until
asked for, which keeps a 10,000-VM page small and quick to open.
"""

from __future__ import annotations

import json
from html import escape

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#1b1f24}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:16px 0 6px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}dl.meta dt{color:#57606a}dl.meta dd{margin:0}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}th.sort{cursor:pointer;user-select:none}th.sort:after{content:" \\2195";color:#8c959f}
th[aria-sort=ascending]:after{content:" \\2191";color:#1b1f24}th[aria-sort=descending]:after{content:" \\2193";color:#1b1f24}
td.n,th.n{text-align:right}.note{color:#57606a}.warn{background:#fff8c5;padding:6px 10px;border:1px solid #d4a72c}
.bad{color:#a40e26;font-weight:600}input.filter{padding:4px 8px;width:320px;margin:4px 0}
svg text{font:12px system-ui,sans-serif}code{font-size:12px}
"""

# Generic: every table.sortable sorts on a header click (numbers as numbers), every input.filter
# hides the rows of its table that do not contain its text, every details[data-rows] builds its
# table from the embedded JSON when first opened (textContent only: values are never parsed as HTML).
_SCRIPT = """
(function(){
"use strict";
var data=JSON.parse(document.getElementById("report-rows").textContent);
function cellValue(row,i){var c=row.cells[i];return c?c.textContent:"";}
function sortable(table){
  var heads=table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,i){
    th.classList.add("sort");th.tabIndex=0;
    th.addEventListener("click",function(){
      var desc=th.getAttribute("aria-sort")==="ascending";
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute("aria-sort");});
      th.setAttribute("aria-sort",desc?"descending":"ascending");
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      var num=th.classList.contains("n");
      var keyed=rows.map(function(r){var v=cellValue(r,i);return [num?parseFloat(v)||0:v.toLowerCase(),r];});
      keyed.sort(function(a,b){var o=a[0]<b[0]?-1:a[0]>b[0]?1:0;return desc?-o:o;});
      var frag=document.createDocumentFragment();keyed.forEach(function(k){frag.appendChild(k[1]);});
      body.appendChild(frag);
    });
  });
}
function filterable(input){
  var table=document.getElementById(input.getAttribute("data-table"));
  var count=document.getElementById(input.getAttribute("data-count"));
  input.addEventListener("input",function(){
    var q=input.value.toLowerCase(),shown=0;
    Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
      var hit=!q||r.textContent.toLowerCase().indexOf(q)>=0;r.hidden=!hit;if(hit){shown++;}
    });
    if(count){count.textContent=String(shown);}
  });
}
function lazy(details){
  details.addEventListener("toggle",function(){
    if(!details.open||details.getAttribute("data-built")){return;}
    var table=details.querySelector("table"),body=table.tBodies[0],frag=document.createDocumentFragment();
    data[details.getAttribute("data-rows")].forEach(function(values){
      var tr=document.createElement("tr");
      values.forEach(function(v,i){var td=document.createElement("td");td.textContent=String(v);
        if(table.tHead.rows[0].cells[i].classList.contains("n")){td.className="n";}tr.appendChild(td);});
      frag.appendChild(tr);
    });
    body.appendChild(frag);details.setAttribute("data-built","1");
  });
}
Array.prototype.forEach.call(document.querySelectorAll("table.sortable"),sortable);
Array.prototype.forEach.call(document.querySelectorAll("input.filter"),filterable);
Array.prototype.forEach.call(document.querySelectorAll("details[data-rows]"),lazy);
document.documentElement.setAttribute("data-ready","1");
})();
"""

_COLOURS = (("configured", "under JIT", "#2da44e"), ("not_configured", "not under JIT", "#d4a72c"), ("unsupported", "unsupported", "#8c959f"))
_NUMERIC = {
    "VMs",
    "port",
    "priority",
    "under JIT",
    "not under JIT",
    "unsupported",
    "eligible",
    "coverage %",
    "under JIT before",
    "under JIT after",
    "under JIT with enforce",
}


def _t(value):
    return escape("" if value is None else str(value), quote=True)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def script_json(value):
    """JSON for a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u00XX`` so no value ends it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _num(value, key):
    """A number the page shows; ``data-key`` names its path in the JSON (the browser test compares)."""
    return '<span data-key="%s">%s</span>' % (_t(key), _t(value))


def _table(table_id, header, rows, sortable=True):
    """A table; ``rows`` are lists of cells already escaped. Numeric columns align right and sort as numbers."""
    head = "".join('<th%s scope="col">%s</th>' % (' class="n"' if title in _NUMERIC else "", _t(title)) for title in header)
    body = "".join("<tr>%s</tr>" % "".join(_td(cell, header[i]) for i, cell in enumerate(row)) for row in rows)
    classes = ' class="sortable"' if sortable else ""
    return '<table id="%s"%s><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (table_id, classes, head, body)


def _td(cell, title):
    return "<td%s>%s</td>" % (' class="n"' if title in _NUMERIC else "", cell)


def _filter(table_id, rows, label):
    count_id = table_id + "-shown"
    return (
        '<p><input class="filter" type="search" data-table="%s" data-count="%s" aria-label="Filter %s" placeholder="Filter %s">'
        ' <span class="note"><span id="%s">%d</span> of %d shown</span></p>' % (table_id, count_id, _t(label), _t(label), count_id, len(rows), len(rows))
    )


def _chart(coverage, audit):
    """Stacked bars, one per moment: under JIT / not under JIT / unsupported, to scale."""
    moments = [("before", "Before")]
    if audit and coverage.get("would_be"):
        moments.append(("would_be", "With enforce"))
    else:
        moments.append(("after", "After"))
    width, left, thickness, gap = 720, 110, 26, 14
    total = max([_int((coverage.get(m) or {}).get("virtual_machines")) for m, _label in moments] + [1])
    parts = [
        '<svg role="img" aria-label="JIT coverage before and after" viewBox="0 0 %d %d" width="100%%">' % (width + 60, (thickness + gap) * len(moments) + 30)
    ]
    for row, (moment, label) in enumerate(moments):
        c = coverage.get(moment) or {}
        y = row * (thickness + gap)
        parts.append('<text x="0" y="%d">%s</text>' % (y + 17, _t(label)))
        x = float(left)
        for key, title, colour in _COLOURS:
            share = (width - left) * _int(c.get(key)) / total
            if share > 0:
                parts.append(
                    '<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>'
                    % (x, y, share, thickness, colour, title, _int(c.get(key)))
                )
            x += share
        parts.append('<text x="%.1f" y="%d">%s%%</text>' % (x + 6, y + 17, _t(c.get("percent"))))
    y = len(moments) * (thickness + gap) + 10
    for index, (_key, title, colour) in enumerate(_COLOURS):
        parts.append(
            '<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>'
            % (left + index * 150, y, colour, left + index * 150 + 16, y + 11, title)
        )
    parts.append("</svg>")
    return "".join(parts)


def _coverage_row(label, c, key):
    cells = [_t(label)] + [_num(c.get(name), "%s.%s" % (key, name)) for name in ("virtual_machines", "configured", "not_configured", "unsupported", "eligible")]
    return cells + [_num(c.get("percent"), key + ".percent")]


def _breakdown(first, entries, moment):
    """Coverage per subscription / resource group / region: before and after (or would be).
    ``entries``: ``(JSON path of the entry, entry)``."""
    rows = []
    for key, entry in entries:
        before, after = entry.get("before") or {}, entry.get(moment) or entry.get("after") or {}
        rows.append(
            [_t(part) for part in first(entry)]
            + [
                _num(after.get("virtual_machines"), key + "." + moment + ".virtual_machines"),
                _num(before.get("configured"), key + ".before.configured"),
                _num(after.get("configured"), "%s.%s.configured" % (key, moment)),
                _num(after.get("eligible"), "%s.%s.eligible" % (key, moment)),
                _num(after.get("percent"), "%s.%s.percent" % (key, moment)),
            ]
        )
    return rows


def _sources(entry):
    if entry.get("whole_internet"):
        return "any source" if entry.get("private_only") else "any Internet address"
    return ", ".join(str(item) for item in entry.get("admitted_prefixes") or []) or "-"


def exposure_state(entry):
    """What JIT does for an exposed port, in words (the Markdown page says the same)."""
    if entry.get("jit_bypassed"):
        return "bypassed"
    if entry.get("open_by_jit_request"):
        return "open by a JIT request"
    return "protected" if entry.get("jit_protected") else "not protected"


def _state(entry):
    text = exposure_state(entry)
    return '<span class="bad">%s</span>' % text if text in ("bypassed", "not protected") else text


def _fix(bypass, rule):
    where = "from the Internet" if bypass.get("exposed") else "from inside the network (no public path)"
    return "Remove rule %s on NSG %s, or narrow its source (it admits %s to port %s %s, before the JIT deny rule)" % (
        rule.get("name"),
        rule.get("nsg"),
        _sources(bypass),
        bypass.get("port"),
        where,
    )


def _written(r, audit):
    """What this run wrote to Azure, in words."""
    if audit:
        return "nothing (audit mode)"
    run = r.get("run") or {}
    parts = [
        "%d JIT polic%s" % (_int(r.get("policies_written")), "y" if _int(r.get("policies_written")) == 1 else "ies"),
        "%d VM(s) added" % _int(run.get("virtual_machines_added")),
    ]
    repair = r.get("drift_repair") or {}
    if repair.get("rules"):
        parts.append("%d missing deny rule set(s) repaired" % len(repair["rules"]))
    if r.get("stale_allow_rules_removed"):
        parts.append("%d stale allow rule(s) removed" % len(r["stale_allow_rules_removed"]))
    enabled = (r.get("defender_for_servers") or {}).get("enabled_by_this_run") or []
    if enabled:
        parts.append("Defender for Servers Plan 2 turned on for " + ", ".join(str(sub) for sub in enabled))
    text = ", ".join(parts)
    return text + (" - check mode: not actually written" if run.get("check_mode") else "")


def report_html(r):  # noqa: PLR0915 - one page, top to bottom
    """The report page: metadata, coverage chart and tables, breakdowns, exposure and bypass tables."""
    audit = r.get("mode") == "audit"
    coverage = r.get("coverage") or {}
    run = r.get("run") or {}
    exposures, bypasses = r.get("exposures") or [], r.get("bypasses") or []
    candidates, skipped = r.get("candidates") or [], r.get("skipped") or []
    moment = "would_be" if audit and coverage.get("would_be") else "after"
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % _t(CSP),
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        "<title>JIT fleet report - %s</title><style>%s</style></head><body>" % (_t(r.get("mode")), _STYLE),
        "<h1>JIT fleet report &mdash; %s</h1>" % _t(r.get("mode")),
        '<p id="coverage-text">%s</p>' % _t(r.get("coverage_text")),
        '<dl class="meta">',
        "<dt>When (UTC)</dt><dd>%s</dd>" % _t(r.get("generated_at")),
        "<dt>Who</dt><dd>%s</dd>" % _t("%s on %s" % (run.get("user") or "unknown user", run.get("host") or "unknown host")),
        "<dt>Mode</dt><dd>%s%s</dd>" % (_t(r.get("mode")), " (check mode)" if run.get("check_mode") else ""),
        "<dt>Policy name</dt><dd>%s</dd>" % _t(r.get("policy_name")),
        "<dt>Subscriptions</dt><dd>%s</dd>" % ", ".join("<code>%s</code>" % _t(sub) for sub in r.get("subscription_ids") or []),
        '<dt>Written to Azure</dt><dd id="written">%s</dd>' % _t(_written(r, audit)),
        "</dl>",
    ]
    plans = r.get("defender_for_servers") or {}
    for sub in plans.get("without_jit") or []:
        out.append(
            '<p class="warn">Subscription <code>%s</code> cannot have JIT: Defender for Servers Plan 2 is not enabled; its VMs were skipped.</p>' % _t(sub)
        )
    out += ["<h2>Coverage</h2>", _chart(coverage, audit)]
    rows = [_coverage_row("before", coverage.get("before") or {}, "coverage.before")]
    rows.append(_coverage_row("would be, with enforce" if moment == "would_be" else "after", coverage.get(moment) or {}, "coverage." + moment))
    out.append(_table("coverage", ("", "VMs", "under JIT", "not under JIT", "unsupported", "eligible", "coverage %"), rows, sortable=False))
    header_tail = ("VMs", "under JIT before", "under JIT after" if moment == "after" else "under JIT with enforce", "eligible", "coverage %")
    subs = [("coverage_by_subscription." + sub, dict(moments, subscription_id=sub)) for sub, moments in (r.get("coverage_by_subscription") or {}).items()]
    groups = [("coverage_by_resource_group.%d" % index, entry) for index, entry in enumerate(r.get("coverage_by_resource_group") or [])]
    regions = [("coverage_by_region.%d" % index, entry) for index, entry in enumerate(r.get("coverage_by_region") or [])]
    for table_id, title, first, key, entries in (
        ("by-subscription", "Per subscription", lambda e: [e.get("subscription_id")], ("subscription",), subs),
        ("by-resource-group", "Per resource group", lambda e: [e.get("resource_group"), e.get("subscription_id")], ("resource group", "subscription"), groups),
        ("by-region", "Per region", lambda e: [e.get("region")], ("region",), regions),
    ):
        if entries:
            out += ["<h3>%s</h3>" % title, _table(table_id, key + header_tail, _breakdown(first, entries, moment))]
    counts = r.get("exposure_counts") or {}
    out += [
        '<h2 id="exposures-title">Exposed management ports (<span data-key="exposures.length">%d</span>)</h2>' % len(exposures),
        "<p>Reachable from the Internet: %s pair(s) on %s VM(s). Open to any source inside the network only: %s pair(s) on %s VM(s).</p>"
        % (
            _num((counts.get("internet") or {}).get("pairs"), "exposure_counts.internet.pairs"),
            _num((counts.get("internet") or {}).get("virtual_machines"), "exposure_counts.internet.virtual_machines"),
            _num((counts.get("inside_network") or {}).get("pairs"), "exposure_counts.inside_network.pairs"),
            _num((counts.get("inside_network") or {}).get("virtual_machines"), "exposure_counts.inside_network.virtual_machines"),
        ),
    ]
    rows = []
    for e in exposures:
        decided = e.get("decided_by") or {}
        rule = "%s @ %s" % (decided.get("rule"), decided.get("nsg")) if decided.get("nsg") else "no NSG"
        reach = "inside the network only" if e.get("private_only") else "Internet"
        rows.append(
            [_t(e.get("vm")), _t(e.get("resource_group")), _t(e.get("port")), _t(reach), _t(_sources(e)), _t(e.get("public_ip") or "-"), _t(rule), _state(e)]
        )
    if rows:
        out += [
            _filter("exposures", rows, "exposures"),
            _table("exposures", ("VM", "resource group", "port", "reachable from", "admitted from", "public IP", "deciding rule", "JIT"), rows),
        ]
    else:
        out.append("<p>No management port is open.</p>")
    out.append('<h2 id="bypasses-title">JIT bypasses (<span data-key="bypasses.length">%d</span>)</h2>' % len(bypasses))
    rows = []
    for b in bypasses:
        for rule in b.get("bypass_rules") or [{}]:
            rows.append(
                [
                    _t(b.get("vm")),
                    _t(b.get("resource_group")),
                    _t(b.get("port")),
                    _t(rule.get("nsg")),
                    _t(rule.get("name")),
                    _t(rule.get("priority")),
                    _t(_fix(b, rule)),
                ]
            )
    if rows:
        out += [
            "<p>JIT protects these ports, but an allow rule evaluated before the JIT deny rule admits traffic anyway: from the Internet"
            " where the VM has a public path, else from inside the network.</p>",
            _filter("bypasses", rows, "bypasses"),
            _table("bypasses", ("VM", "resource group", "port", "NSG", "rule", "priority", "fix"), rows),
        ]
    else:
        out.append("<p>None.</p>")
    lists = {}
    out.append('<h2>%s (<span data-key="candidates.length">%d</span>)</h2>' % ("Would be put under JIT" if audit else "Put under JIT", len(candidates)))
    lists["candidates"] = [[vm.get("name"), vm.get("resource_group"), vm.get("os_type"), ", ".join(str(p) for p in vm.get("ports") or [])] for vm in candidates]
    out.append(_lazy("candidates", "VMs", ("VM", "resource group", "OS", "ports"), len(candidates)))
    out.append('<h2>Skipped VMs (<span data-key="skipped.length">%d</span>)</h2>' % len(skipped))
    reasons = {}
    for vm in skipped:
        reasons[vm.get("reason")] = reasons.get(vm.get("reason"), 0) + 1
    if reasons:
        out.append(
            _table("skipped-reasons", ("reason", "VMs"), [[_t(reason), _t(count)] for reason, count in sorted(reasons.items(), key=lambda item: -item[1])])
        )
    lists["skipped"] = [[vm.get("name"), vm.get("resource_group"), vm.get("reason")] for vm in skipped]
    out.append(_lazy("skipped", "skipped VMs", ("VM", "resource group", "reason"), len(skipped)))
    repair = r.get("drift_repair") or {}
    if r.get("drift") or repair.get("rules") or r.get("stale_allow_rules_removed"):
        out.append("<h2>Drift and stale rules</h2>")
        rows = [
            [_t(x.get("vm")), _t(x.get("nsg")), _t(x.get("private_ip")), _t(", ".join(str(p) for p in x.get("ports") or []))] for x in repair.get("rules") or []
        ]
        if rows:
            out += [
                "<p>Deny rules another tool deleted, %s by writing their policy again:</p>" % _t(repair.get("action")),
                _table("drift", ("VM", "NSG", "private IP", "ports"), rows),
            ]
        out.append("<p>Deny rules still missing: %d. Stale JIT rules: %s.</p>" % (len(r.get("drift") or []), _t(r.get("stale_rules"))))
        rows = [[_t(x.get("vm_name")), _t(x.get("port")), _t(x.get("rule")), _t(x.get("nsg"))] for x in r.get("stale_allow_rules_removed") or []]
        if rows:
            out.append(_table("stale-removed", ("VM", "port", "rule", "NSG"), rows))
    out += [
        '<p class="note">The JSON report beside this page holds every detail; its numbers are the ones shown here.</p>',
        '<script type="application/json" id="report-rows">%s</script>' % script_json(lists),
        "<script>%s</script></body></html>\n" % _SCRIPT,
    ]
    return "\n".join(out)


def _lazy(name, noun, header, count):
    """A list that is built in the browser when opened: no DOM for VMs that need no attention."""
    if not count:
        return "<p>None.</p>"
    return '<details data-rows="%s"><summary>Show the %d %s</summary>%s</details>' % (name, count, _t(noun), _table(name, header, []))
