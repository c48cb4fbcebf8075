#!/usr/bin/env python3
"""The jit_fleet report page at 10,000 VMs: its size and how long headless Chromium takes to show
it (docs/roles.md quotes the numbers). A synthetic fleet (tests/unit/fakes.py fleet_facts), the
filters as the role calls them, then the page opened, sorted and filtered in the browser.

    .venv/bin/python tools/dev/report_html_10k.py [VMS]
"""

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "tests", "unit"), os.path.join(ROOT, "tests", "integration"), os.path.join(ROOT, ".build", "src")]
LINK = os.path.join(ROOT, ".build", "src", "ansible_collections", "jitaccess", "azure")  # as tests/conftest.py makes it
if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)

from browser import Browser  # noqa: E402
from fakes import fleet_facts  # noqa: E402

from ansible_collections.jitaccess.azure.plugins.filter.jit_fleet import jit_fleet_report, jit_fleet_report_documents, jit_fleet_selection  # noqa: E402


def main(count):
    facts = fleet_facts(count)
    started = time.monotonic()
    selection = jit_fleet_selection(facts["virtual_machines"], exclude_tags={"jit": "skip"}, ports={"linux": [22], "windows": [3389, 5985, 5986]})
    report = jit_fleet_report(selection, facts, None, {"skipped": True}, mode="audit")
    documents = jit_fleet_report_documents(report)
    print("filters (report + 3 documents): %.2f s" % (time.monotonic() - started))
    for kind, text in documents.items():
        print("%-8s %9d bytes" % (kind, len(text.encode())))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "jit_fleet_report.html")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(documents["html"])
        with Browser() as browser:
            started = time.monotonic()
            browser.open("file://" + path)
            browser.wait_until("document.documentElement.getAttribute('data-ready') === '1'")
            opened = time.monotonic() - started
            timing = browser.evaluate("(function(){var t=performance.getEntriesByType('navigation')[0];return [t.domContentLoadedEventEnd,t.loadEventEnd];})()")
            print("open: %.2f s wall (navigation to load event); DOMContentLoaded %.0f ms, load %.0f ms" % (opened, timing[0], timing[1]))
            sort_header = "#exposures th:nth-child(3)"
            shown = "document.getElementById('exposures-shown').textContent !== '%d'" % len(report["exposures"])
            built = "document.querySelectorAll('#candidates tbody tr').length === %d" % len(report["candidates"])
            for label, action, ready in (
                ("sort the exposure table", lambda: browser.click(sort_header), "document.querySelector('%s').getAttribute('aria-sort')" % sort_header),
                ("filter the exposure table", lambda: browser.type_into("input[data-table=exposures]", "rg-app-007"), shown),
                ("show the candidates", lambda: browser.click("details[data-rows=candidates] summary"), built),
            ):
                started = time.monotonic()
                action()
                browser.wait_until(ready)
                print("%s: %.2f s" % (label, time.monotonic() - started))
            print("console errors / warnings:", browser.problems() or "none")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
