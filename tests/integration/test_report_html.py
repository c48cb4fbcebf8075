"""The jit_fleet report page in a real headless Chromium (Debian's; `make chromium` installs it).

The role runs against armsim and writes the page; Chromium opens it from file://, driven over the
DevTools protocol on a pipe (tests/integration/browser.py). The page must load without a console
error or a fetch, show the JSON's numbers, sort and filter through real clicks and typing, and keep
a tag value that tries to inject markup as text. Without Chromium the test fails: it does not skip.
A screenshot is kept at tests/output/jit_fleet_report.png (docs/images/jit_fleet_report.png is one).
"""

import json
import os

from browser import Browser
from harness import ROOT, run_playbook
from roles_support import PLAYBOOKS

ARMSIM_SEED = "report_html.yaml"
PLAYBOOK = os.path.join(PLAYBOOKS, "enable_jit_fleet.yml")
OUTPUT = os.path.join(ROOT, "tests", "output")
HOSTILE = "</script><script>window.pwned=1</script><img src=x onerror=window.pwned=2>&amp;"

# The cells' text of a table's visible rows, in page order.
ROWS = (
    "Array.from(document.querySelectorAll('#%s tbody tr')).filter(function(r){return !r.hidden;})"
    ".map(function(r){return Array.from(r.cells).map(function(c){return c.textContent;});})"
)


def json_value(report, key):
    value = report
    for part in key.split("."):
        value = len(value) if part == "length" else value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_the_report_page_in_a_headless_browser(armsim, tmp_path):
    extra = {
        "jit_fleet_report_dir": str(tmp_path),
        "jit_fleet_mode": "enforce",
        "jit_fleet_exclude_tags": {"jit": "*"},
        "jit_fleet_exclude_name_patterns": ["*-TEST"],
    }
    run = run_playbook(armsim, PLAYBOOK, extra_vars=extra)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert armsim.stats()["writes"] == 3  # the page reports a real rollout: rg-web, rg-win and rg-db written
    report = json.loads((tmp_path / "jit_fleet_report.json").read_text())
    page = tmp_path / "jit_fleet_report.html"
    assert oct(page.stat().st_mode & 0o777) == "0o600"  # like the JSON: it lists every exposed port
    assert len(report["bypasses"]) == 2 and report["exposures"] and report["candidates"]
    url = page.as_uri()

    with Browser() as browser:
        browser.open(url)
        browser.wait_until("document.documentElement.getAttribute('data-ready') === '1'")
        assert browser.problems() == []  # no console error or warning, no exception, no CSP violation
        assert browser.requests() == [url]  # nothing fetched but the page itself

        # every number the page shows is the JSON's
        shown = browser.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('[data-key]')).map(function(e){return [e.dataset.key,e.textContent];}))"
        )
        assert len(shown) > 30 and "coverage.after.percent" in shown and "coverage_by_region.1.after.configured" in shown
        assert shown == {key: str(json_value(report, key)) for key in shown}
        assert shown["coverage.after.configured"] == "6" and shown["bypasses.length"] == "2"
        assert len(browser.evaluate(ROWS % "exposures")) == len(report["exposures"])

        # each bypass names its NSG, its rule and the fix
        bypasses = browser.evaluate(ROWS % "bypasses")
        assert sorted((row[0], row[2], row[3], row[4]) for row in bypasses) == [
            ("web-1", "22", "nsg-web", "AllowSshAnywhere"),
            ("web-2", "22", "nsg-web", "AllowSshAnywhere"),
        ]
        assert all(row[6].startswith("Remove rule AllowSshAnywhere on NSG nsg-web, or narrow its source") for row in bypasses)

        # sorting: a real click on the "VM" header, then again for the other direction
        names = [row[0] for row in browser.evaluate(ROWS % "exposures")]
        assert len(set(names)) > 2  # descending differs from the page's order
        browser.click("#exposures th:nth-child(1)")
        browser.wait_until("document.querySelector('#exposures th:nth-child(1)').getAttribute('aria-sort') === 'ascending'")
        assert [row[0] for row in browser.evaluate(ROWS % "exposures")] == sorted(names)
        browser.click("#exposures th:nth-child(1)")
        browser.wait_until("document.querySelector('#exposures th:nth-child(1)').getAttribute('aria-sort') === 'descending'")
        assert [row[0] for row in browser.evaluate(ROWS % "exposures")] == sorted(names, reverse=True)

        # filtering: typed into the box, the rows without the text hide and the count follows
        browser.type_into("input[data-table=bypasses]", "web-2")
        browser.wait_until("document.getElementById('bypasses-shown').textContent === '1'")
        assert [row[0] for row in browser.evaluate(ROWS % "bypasses")] == ["web-2"]

        # the VMs that need no attention are built when asked for, as text
        assert browser.evaluate("document.querySelectorAll('#skipped tbody tr').length") == 0
        browser.click("details[data-rows=skipped] summary")
        browser.wait_until("document.querySelectorAll('#skipped tbody tr').length === %d" % len(report["skipped"]))
        reasons = {row[0]: row[2] for row in browser.evaluate(ROWS % "skipped")}
        assert reasons["web-3"] == "excluded by tag jit=" + HOSTILE  # the tag value, shown as text

        # nothing the tag value tried got in: no extra script or image ran or exists
        assert browser.evaluate("typeof window.pwned") == "undefined"
        assert browser.evaluate("[document.scripts.length, document.images.length]") == [2, 0]
        assert browser.problems() == []

        os.makedirs(OUTPUT, exist_ok=True)
        screenshot = os.path.join(OUTPUT, "jit_fleet_report.png")
        clear = "(function(e){e.value='';e.dispatchEvent(new Event('input'));window.scrollTo(0,0);return true;})"
        browser.evaluate(clear + "(document.querySelector('input[data-table=bypasses]'))")
        browser.screenshot(screenshot)
    with open(screenshot, "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
