"""Nothing in the collection depends on where Azure puts JIT's rules (issue 15): where a new deny
rule goes is documented only loosely ("top priority", seen from 1000 up and at 4096), so the whole
open-and-close path runs under both of armsim's placements and must give the same outcome - the
VM under JIT, the facts' verdicts, access through the data-plane gate, and the close."""

import pytest
from harness import run_module
from roles_support import gate_admits

ARMSIM_SEED = "jit_request.yaml"
SUB = "00000000-0000-0000-0000-000000000001"
SOURCE = "127.0.0.1"


def ssh_verdict(armsim, vm):
    facts = run_module(armsim, "nsg_jit_facts", {"virtual_machines": [{"name": vm, "resource_group": "rg-jit"}]})["ansible_facts"]["azure_jit"]
    (entry,) = [item for item in facts["virtual_machines"][0]["exposure"] if item["port"] == 22]
    return entry["jit_protected"], entry["exposed"] or entry["private_only"], facts["virtual_machines"][0]["jit_status"]


@pytest.mark.parametrize("placement", ["top", "bottom"])
def test_put_open_and_close_give_the_same_outcome_wherever_the_rules_go(armsim, placement):
    armsim.config(deny_placement=placement)
    vm = [{"name": "both-1", "resource_group": "rg-jit"}]
    # taken out and put back under JIT: its deny rules are placed anew, the armsim way of this run
    run_module(armsim, "jit_policy", {"virtual_machines": vm, "state": "absent"})
    run_module(armsim, "jit_policy", {"virtual_machines": vm, "ports": [{"number": 22, "max_request_access_duration": "PT3H"}]})
    denies = [
        rule["properties"]["priority"]
        for nsg in armsim.state()["network_security_groups"]
        for rule in nsg["properties"]["securityRules"]
        if rule["name"].startswith("MicrosoftDefenderForCloud-JITRule_") and rule["properties"]["destinationAddressPrefix"] == "10.10.0.4"
    ]
    assert denies and all((priority >= 1000) if placement == "top" else (priority > 4000) for priority in denies), denies
    assert ssh_verdict(armsim, "both-1") == (True, False, "configured")
    assert gate_admits(armsim, "both-1") is False
    opened = run_module(armsim, "jit_request", {"virtual_machines": vm, "ports": [22], "source_address_prefixes": [SOURCE], "duration": "10m"})
    assert opened["virtual_machines"][0]["ports"][0]["open"] is True
    assert gate_admits(armsim, "both-1") is True
    closed = run_module(armsim, "jit_request", {"virtual_machines": vm, "ports": [22], "state": "absent"})
    assert closed["changed"] is True
    assert gate_admits(armsim, "both-1") is False
    assert ssh_verdict(armsim, "both-1") == (True, False, "configured")
