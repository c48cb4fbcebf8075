"""The jit_fleet report page: self-contained, every Azure value escaped, its numbers the JSON's, small at 10,000 VMs."""

import json
import re
from html.parser import HTMLParser

from fakes import fleet_facts

from ansible_collections.jitaccess.azure.plugins.filter.jit_fleet import jit_fleet_report, jit_fleet_report_documents, jit_fleet_selection
from ansible_collections.jitaccess.azure.plugins.module_utils._report_html import CSP, report_html, script_json

HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">&amp;\''
PORTS = {"linux": [22], "windows": [3389]}


def hostile_report(mode="audit"):
    """A fleet whose VM, resource group, tag, NSG and rule names try to inject markup."""
    rule = {"name": "Allow" + HOSTILE, "priority": 200, "nsg": "nsg-" + HOSTILE}
    finding = {"port": 22, "nic": "n1", "exposed": True, "jit_protected": True, "jit_bypassed": True, "admitted_prefixes": ["*"],
               "internet_allowed": True, "decided_by": {"rule": rule["name"], "nsg": rule["nsg"]}, "bypass_rules": [rule]}  # fmt: skip

    def vm(name, status="not_configured", exposure=(), tags=None):
        return {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/" + name, "name": name,
                "resource_group": "rg" + HOSTILE, "location": "westeurope" + HOSTILE, "os_type": "Linux", "tags": tags or {},
                "jit_status": status, "exposure": list(exposure)}  # fmt: skip

    vms = [vm("web" + HOSTILE, exposure=[finding]), vm("skip" + HOSTILE, tags={"jit": HOSTILE}), vm("db-1", status="configured")]
    facts = {"subscription_id": "s", "subscription_ids": ["s"], "generated_at": "2026-11-21T10:00:00Z", "virtual_machines": vms,
             "summary": {"virtual_machines": 3, "jit_status": {"configured": 1, "not_configured": 2}}, "drift": [], "stale_rules": []}  # fmt: skip
    selection = jit_fleet_selection(vms, ports=PORTS, exclude_tags={"jit": "*"})
    return jit_fleet_report(selection, facts, None, {"skipped": True}, mode=mode, user="alice" + HOSTILE, host="ctl")


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, and the text of each script."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self.keys, self._key, self._script = [], [], {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._key = attrs.get("data-key")
        if tag == "script":
            self._script = []

    def handle_data(self, data):
        if self._key is not None:
            self.keys[self._key] = data
            self._key = None
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None


def parse(page):
    parser = Elements()
    parser.feed(page)
    parser.close()
    return parser


def json_value(report, key):
    value = report
    for part in key.split("."):
        value = len(value) if part == "length" else value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_no_value_from_azure_becomes_markup():
    report = hostile_report()
    page = report_html(report)
    parsed = parse(page)
    assert [tag for tag, _attrs in parsed.tags].count("script") == 2 and "img" not in [tag for tag, _attrs in parsed.tags]
    assert not any(name.startswith("on") for _tag, attrs in parsed.tags for name in attrs)
    assert "window.pwned" not in parsed.scripts[1]  # the page's own script only
    rows = json.loads(parsed.scripts[0])  # the embedded lists come back intact
    assert rows["candidates"][0][0] == "web" + HOSTILE and rows["skipped"][0][0] == "skip" + HOSTILE
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1" in page and "\\u003c/script\\u003e" in parsed.scripts[0]
    assert "Allow&lt;/script&gt;" in page and "nsg-&lt;/script&gt;" in page  # the bypass rule, escaped


def test_script_json_cannot_end_its_script():
    text = script_json({"a": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028"}


def test_self_contained_with_a_policy_that_forbids_every_fetch():
    page = report_html(hostile_report())
    tags = parse(page).tags
    assert ("meta", {"http-equiv": "Content-Security-Policy", "content": CSP}) in tags
    assert CSP.startswith("default-src 'none';") and "connect-src" not in CSP
    assert not [attrs for tag, attrs in tags if tag in ("link", "iframe", "object", "embed") or "src" in attrs or "href" in attrs]
    assert "url(" not in page and "@import" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_every_number_on_the_page_is_the_json_one():
    report = hostile_report()
    documents = jit_fleet_report_documents(report)
    from_json = json.loads(documents["json"])
    keys = parse(documents["html"]).keys
    assert len(keys) >= 30 and "coverage.would_be.percent" in keys and "coverage_by_region.0.would_be.configured" in keys
    assert keys == {key: str(json_value(from_json, key)) for key in keys}


def test_bypass_rows_name_the_rule_to_fix_and_metadata_says_who_and_what():
    report = hostile_report(mode="audit")
    page = report_html(report)
    assert "Remove rule Allow&lt;/script&gt;" in page and "on NSG nsg-&lt;/script&gt;" in page and "before the JIT deny rule" in page
    assert "alice&lt;/script&gt;" in page and "nothing (audit mode)" in page and "2026-11-21T10:00:00Z" in page
    enforce = dict(report, mode="enforce", policies_written=2, run=dict(report["run"], virtual_machines_added=7, check_mode=True))
    assert "2 JIT policies, 7 VM(s) added - check mode: not actually written" in report_html(enforce)


def test_ten_thousand_vms_stay_small_and_put_no_quiet_vm_in_the_dom():
    facts = fleet_facts(10000)
    selection = jit_fleet_selection(facts["virtual_machines"], exclude_tags={"jit": "skip"}, ports={"linux": [22], "windows": [3389, 5985, 5986]})
    report = jit_fleet_report(selection, facts, None, {"skipped": True}, mode="audit", user="u", host="h")
    documents = jit_fleet_report_documents(report)
    size = len(documents["html"].encode())
    # docs/roles.md quotes the size (deterministic for this fleet); a seventh of the JSON's
    assert 600_000 < size < 750_000 and size * 6 < len(documents["json"].encode())
    assert (len(report["exposures"]), len(report["bypasses"]), len(report["candidates"]), len(report["skipped"])) == (1000, 100, 6787, 788)
    parsed = parse(documents["html"])
    # the exposure and bypass rows are in the DOM; the 6,787 candidates and 788 skipped VMs are not until asked for
    assert [tag for tag, _attrs in parsed.tags].count("tr") < 1000 + 100 + 2 * 100 + 50
    assert len(json.loads(parsed.scripts[0])["candidates"]) == 6787
    assert re.search(r"<td>vm-00001</td>", documents["html"]) is None  # a candidate without findings


def test_a_bypass_says_where_it_admits_from_without_calling_a_private_vm_internet_facing():
    from ansible_collections.jitaccess.azure.plugins.module_utils._report_html import _fix as fix_text

    rule = {"name": "AllowSshAnywhere", "nsg": "nsg-web"}
    private = fix_text({"port": 22, "whole_internet": True, "private_only": True, "exposed": False}, rule)
    public = fix_text({"port": 22, "whole_internet": True, "private_only": False, "exposed": True}, rule)
    narrow = fix_text({"port": 22, "admitted_prefixes": ["198.51.100.0/24"], "exposed": True}, rule)
    assert "any source to port 22 from inside the network (no public path)" in private and "Internet" not in private
    assert "any Internet address to port 22 from the Internet" in public
    assert "198.51.100.0/24 to port 22 from the Internet" in narrow
