"""The jit_fleet role's filters: candidate selection and the rollout report."""

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.jitaccess.azure.plugins.filter.jit_fleet import FilterModule, jit_fleet_report, jit_fleet_report_documents, jit_fleet_selection

PORTS = {"linux": [22], "windows": [3389, {"number": 5986, "protocol": "UDP", "max_request_access_duration": "PT1H"}]}


def vm(name, *, status="not_configured", os_type="Linux", tags=None, reason=None, exposure=()):
    return {
        "id": "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/" + name,
        "name": name,
        "resource_group": "RG",
        "os_type": os_type,
        "tags": tags or {},
        "jit_status": status,
        "unsupported_reason": reason,
        "exposure": list(exposure),
    }


def select(vms, **kwargs):
    kwargs.setdefault("ports", PORTS)
    return jit_fleet_selection(vms, **kwargs)


def test_candidates_get_their_os_ports_with_the_role_defaults():
    result = select([vm("web-1"), vm("win-1", os_type="Windows")], allowed_source_address_prefixes=["10.0.0.0/8"], max_request_access_duration="PT2H")
    assert result["already_configured"] == [] and result["skipped"] == []
    # ids only; the port rules once per OS type (jit_policy's ports_by_os_type)
    assert result["candidates"] == [{"id": vm("web-1")["id"]}, {"id": vm("win-1")["id"]}]
    by_os = result["ports_by_os_type"]
    assert by_os["linux"] == [{"number": 22, "protocol": "TCP", "allowed_source_address_prefixes": ["10.0.0.0/8"], "max_request_access_duration": "PT2H"}]
    assert [(p["number"], p["protocol"], p["max_request_access_duration"]) for p in by_os["windows"]] == [(3389, "TCP", "PT2H"), (5986, "UDP", "PT1H")]
    assert select([vm("web-1")])["ports_by_os_type"].keys() == {"linux"}  # only the OS types among the candidates


def test_every_reason_is_given_and_configured_vms_are_left_alone_unless_asked():
    vms = [
        vm("bare-1", status="unsupported", reason="no NSG on any NIC or subnet"),
        vm("web-2", tags={"Env": "dev"}),
        vm("web-3", tags={"env": "prod", "jit": "off"}),
        vm("db-1", tags={"env": "prod"}),
        vm("web-4", tags={"env": "prod"}, status="configured"),
        vm("odd-1", os_type=None, tags={"env": "prod"}),
    ]
    result = select(vms, include_tags={"ENV": "prod"}, exclude_tags={"jit": "*"}, name_patterns=["web-?", "ODD*"], exclude_name_patterns=["*-9"])
    reasons = {item["name"]: item["reason"] for item in result["skipped"]}
    assert reasons == {
        "bare-1": "unsupported: no NSG on any NIC or subnet; lacks required tag ENV=prod; name matches none of web-?, ODD*",
        "web-2": "lacks required tag ENV=prod",
        "web-3": "excluded by tag jit=off",
        "db-1": "name matches none of web-?, ODD*",
        "odd-1": "no ports configured for OS type unknown in jit_fleet_ports",
    }
    assert [item["name"] for item in result["already_configured"]] == ["web-4"] and result["candidates"] == []
    again = select([vm("web-4", status="configured")], update_configured=True)
    assert [item["id"].rsplit("/", 1)[1] for item in again["candidates"]] == ["web-4"]
    excluded = select([vm("web-9")], exclude_name_patterns=["*-9"])
    assert excluded["skipped"][0]["reason"] == "name excluded by pattern *-9"


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="jit_fleet_ports: port 'ssh' is not a number"):
        select([vm("web-1")], ports={"linux": ["ssh"]})
    with pytest.raises(AnsibleFilterError, match="jit_fleet_include_tags must be a dictionary"):
        select([vm("web-1")], include_tags=["env"])


def test_report_coverage_candidates_policies_exposures_and_bypasses():
    finding = {
        "port": 22,
        "nic": "web-1-nic",
        "public_ip": "20.0.0.1",
        "exposed": True,
        "private_only": False,
        "internet_allowed": True,
        "admitted_prefixes": [],
        "jit_protected": True,
        "jit_bypassed": True,
        "open_by_jit_request": False,
        "bypass_rules": [{"name": "AllowSshAnywhere"}],
        "decided_by": {"rule": "AllowSshAnywhere"},
    }
    quiet = dict(finding, port=3389, exposed=False, jit_bypassed=False)
    before = {
        "subscription_id": "s",
        "generated_at": "t0",
        "virtual_machines": [vm("web-1"), vm("web-2")],
        "summary": {"virtual_machines": 2, "jit_status": {"configured": 0, "not_configured": 2, "unsupported": 0}},
        "stale_rules": [],
        "drift": [],
    }
    after = dict(
        before,
        generated_at="t1",
        virtual_machines=[vm("web-1", status="configured", exposure=[finding, quiet]), vm("web-2", status="configured")],
        summary={"virtual_machines": 2, "jit_status": {"configured": 1, "not_configured": 1}},
        stale_rules=[{}, {}],
    )
    selection = select(before["virtual_machines"])
    apply = {
        "changed": True,
        "policies": [{"id": "p", "resource_group": "RG", "location": "westeurope", "action": "update", "changed": True, "virtual_machine_count": 2}],
    }
    report = jit_fleet_report(selection, before, after, apply, mode="enforce", policy_name="default", scope={"resource_groups": []}, settings={"ports": PORTS})
    assert report["coverage"] == {
        "before": {"virtual_machines": 2, "configured": 0, "not_configured": 2, "unsupported": 0, "eligible": 2, "percent": 0.0},
        "after": {"virtual_machines": 2, "configured": 1, "not_configured": 1, "unsupported": 0, "eligible": 2, "percent": 50.0},
    }
    assert report["changed"] and report["policies_written"] == 1 and report["policies"][0]["virtual_machines"] == 2
    assert [c["name"] for c in report["candidates"]] == ["web-1", "web-2"] and report["candidates"][0]["ports"] == [22]
    assert [(e["vm"], e["port"], e["public_ip"], e["jit_bypassed"]) for e in report["exposures"]] == [("web-1", 22, "20.0.0.1", True)]
    assert report["bypasses"] == [
        {"vm": "web-1", "subscription_id": "s", "resource_group": "RG", "id": after["virtual_machines"][0]["id"], "port": 22, "nic": "web-1-nic",
         "bypass_rules": [{"name": "AllowSshAnywhere"}], "admitted_prefixes": [], "whole_internet": False, "exposed": True, "private_only": False}
    ]  # fmt: skip
    assert report["stale_rules"] == 2 and report["generated_at"] == "t1" and report["subscription_id"] == "s"
    assert report["subscription_ids"] == ["s"] and report["coverage_by_subscription"] == {}  # facts without per-subscription counts
    # Audit: no apply result, no second read - the report is about the first read.
    audit = jit_fleet_report(selection, before, None, {"skipped": True, "changed": False})
    assert not audit["changed"] and audit["policies"] == [] and audit["coverage"]["after"] == audit["coverage"]["before"]
    with pytest.raises(AnsibleFilterError, match="candidate .*web-3 is not among the VMs read before"):
        jit_fleet_report({"candidates": [{"id": vm("web-3")["id"]}]}, before)


def test_public_ip_from_the_nics_when_the_entry_has_none():
    entry = {"port": 22, "nic": "n1", "exposed": True}
    facts = {"virtual_machines": [dict(vm("web-1", exposure=[entry]), nics=[{"name": "n1", "public_ip": "20.0.0.9"}])]}
    assert jit_fleet_report({}, facts)["exposures"][0]["public_ip"] == "20.0.0.9"


def test_documents_json_and_markdown_page():
    rule = {"name": "AllowSshAnywhere", "priority": 200, "nsg": "nsg-web"}
    finding = {"port": 22, "nic": "n1", "exposed": True, "jit_protected": True, "jit_bypassed": True, "admitted_prefixes": ["*"], "internet_allowed": True,
               "decided_by": {"rule": "AllowSshAnywhere", "nsg": "nsg-web"}, "bypass_rules": [rule]}  # fmt: skip
    before = {
        "subscription_id": "s",
        "generated_at": "t0",
        "virtual_machines": [vm("web-1", exposure=[finding]), vm("win-1", os_type="Windows"), vm("bare-1", status="unsupported", reason="no NSG | none")],
        "summary": {"virtual_machines": 3, "jit_status": {"not_configured": 2, "unsupported": 1}},
        "drift": [{}],
        "stale_rules": [{}],
    }
    selection = select(before["virtual_machines"])
    apply = {"changed": True, "policies": [{"id": "/x/jitNetworkAccessPolicies/default", "resource_group": "RG", "location": "westeurope", "action": "created",
                                           "changed": True, "virtual_machine_count": 2}]}  # fmt: skip
    report = jit_fleet_report(selection, before, None, apply, mode="enforce")
    documents = jit_fleet_report_documents(report)
    assert json.loads(documents["json"]) == json.loads(json.dumps(report)) and documents["json"].endswith("}\n")
    page = documents["markdown"]
    assert page.startswith("# JIT fleet report — enforce\n") and "Enforce mode: 1 JIT policy written." in page
    assert "| before | 3 | 0 | 2 | 1 | 0.0% |" in page
    assert "## Put under JIT (2)" in page and "| web-1 | RG | Linux | 22 |" in page and "| win-1 | RG | Windows | 3389, 5986 |" in page
    assert "| default | RG | westeurope | created | 2 |" in page
    assert "## Reachable from the Internet: 1 (VM, port) pair on 1 VM" in page
    assert "| web-1 (RG) | 22 | any Internet address |  | AllowSshAnywhere @ nsg-web | bypassed |" in page
    assert "## Open to any source inside the network: 0 (VM, port) pairs on 0 VMs" in page
    assert report["exposure_counts"] == {
        "internet": {"pairs": 1, "virtual_machines": 1, "text": "1 (VM, port) pair on 1 VM"},
        "inside_network": {"pairs": 0, "virtual_machines": 0, "text": "0 (VM, port) pairs on 0 VMs"},
    }
    assert "| web-1 (RG) | 22 | AllowSshAnywhere (priority 200 on nsg-web) |" in page
    assert "| bare-1 | RG | unsupported: no NSG \\| none |" in page  # a pipe in a value does not break the table
    assert "- JIT deny rules still missing (deleted by another tool): 1" in page and "- Stale JIT rules: 1" in page
    quiet = jit_fleet_report_documents(jit_fleet_report(select([]), {"virtual_machines": []}, None, {"skipped": True}))["markdown"]
    assert "Audit mode: nothing was written to Azure. 0 VM(s)" in quiet and "No management port is reachable from the Internet." in quiet
    # audit shows what enforce would give, never "0/N after"
    audit = jit_fleet_report(selection, before, None, {"skipped": True}, mode="audit")
    assert audit["coverage"]["would_be"]["configured"] == 2 and audit["coverage"]["would_be"]["percent"] == 100.0
    assert "| would be, with enforce | 3 | 2 | 0 | 1 | 100.0% |" in jit_fleet_report_documents(audit)["markdown"]
    assert audit["coverage_text"] == "0/2 eligible VMs under JIT before, would be 2/2 with jit_fleet_mode=enforce (100.0%)"
    assert "## Drift" not in quiet and "### Policies" not in quiet


def test_filter_names():
    assert set(FilterModule().filters()) == {"jit_fleet_selection", "jit_fleet_report", "jit_fleet_report_documents"}


def test_selection_drifted_and_stale_allow_stay_in_scope():
    def vm(name, status="configured", tags=None):
        return {"id": "/x/virtualMachines/" + name, "name": name, "resource_group": "RG", "os_type": "Linux", "jit_status": status, "tags": tags or {}}

    vms = [vm("web-1"), vm("web-2", "not_configured"), vm("db-1", tags={"jit": "skip"}), vm("web-3")]
    drift = [{"vm_id": "/x/virtualMachines/web-1"}, {"vm_id": "/X/virtualMachines/WEB-1"}, {"vm_id": "/x/virtualMachines/db-1"}]
    stale = [
        {"kind": "allow", "vm_id": "/x/virtualMachines/web-2"},
        {"kind": "deny", "vm_id": "/x/virtualMachines/web-3"},
        {"kind": "allow", "vm_id": "/x/virtualMachines/db-1"},
    ]
    selection = jit_fleet_selection(vms, exclude_tags={"jit": "skip"}, ports={"linux": [22]}, drift=drift, stale_rules=stale)
    assert selection["drifted"] == [{"id": "/x/virtualMachines/web-1"}]  # once; db-1 is excluded by its tag
    assert selection["stale_allow"] == [{"id": "/x/virtualMachines/web-2"}]  # deny rules and excluded VMs stay
    report = jit_fleet_report(selection, {"virtual_machines": vms, "drift": drift[:1]}, None, {"changed": False}, mode="audit")
    assert report["drift_repair"]["action"] == "would repair" and len(report["drift_repair"]["rules"]) == 1
    closed = {"closed": [{"vm_name": "web-2", "port": 22, "nsg_rules": [{"name": "MicrosoftDefenderForCloud-JITRule-1-A", "nsg_id": "/x/nsg-a"}]}]}
    enforce = jit_fleet_report(selection, {"virtual_machines": vms}, None, {"repaired": drift[:1]}, mode="enforce", stale_close=closed)
    assert enforce["drift_repair"]["action"] == "repaired"
    assert enforce["stale_allow_rules_removed"] == [{"vm_name": "web-2", "port": 22, "rule": "MicrosoftDefenderForCloud-JITRule-1-A", "nsg": "nsg-a"}]
    page = jit_fleet_report_documents(enforce)["markdown"]
    assert "repaired by writing their policy again" in page and "## Stale JIT allow rules removed (1)" in page


def test_report_breaks_coverage_down_per_resource_group_and_region_and_says_who_ran_it():
    def located(name, rg, location, status="not_configured"):
        return dict(vm(name, status=status), id="/subscriptions/s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (rg, name),
                    resource_group=rg, location=location)  # fmt: skip

    before_vms = [located("a", "rg-1", "westeurope"), located("b", "rg-1", "northeurope", "configured"), located("c", "RG-2", "westeurope", "unsupported")]
    before = {"subscription_id": "s", "virtual_machines": before_vms, "summary": {"virtual_machines": 3, "jit_status": {"configured": 1, "not_configured": 1}}}
    selection = select(before_vms)
    audit = jit_fleet_report(selection, before, None, {"skipped": True}, mode="audit", user="alice", host="ctl")
    assert [
        (g["resource_group"], g["before"]["configured"], g["before"]["eligible"], g["would_be"]["configured"]) for g in audit["coverage_by_resource_group"]
    ] == [
        ("rg-1", 1, 2, 2),
        ("RG-2", 0, 0, 0),
    ]
    assert [(g["region"], g["before"]["virtual_machines"], g["would_be"]["percent"]) for g in audit["coverage_by_region"]] == [
        ("northeurope", 1, 100.0),
        ("westeurope", 2, 100.0),
    ]
    assert audit["run"] == {"user": "alice", "host": "ctl", "check_mode": False, "virtual_machines_added": 0}
    after = dict(before, virtual_machines=[dict(before_vms[0], jit_status="configured")] + before_vms[1:])
    enforce = jit_fleet_report(selection, before, after, {"changed": True}, mode="enforce", check_mode=True)
    assert enforce["run"]["virtual_machines_added"] == 1 and enforce["run"]["check_mode"] and enforce["run"]["user"]  # the local user by default
    assert "would_be" not in enforce["coverage_by_region"][0] and enforce["coverage_by_resource_group"][0]["after"]["configured"] == 2
    assert set(jit_fleet_report_documents(enforce)) == {"json", "markdown", "html"}


def test_the_filters_read_the_facts_nsg_jit_facts_wrote_to_its_facts_file(tmp_path):
    """The role hands the fleet from task to task through nsg_jit_facts' facts_file: given the task's
    result (summary and file name, no lists), the filters read the whole fact from the file."""
    from ansible_collections.jitaccess.azure.plugins.module_utils._topology import save_facts

    vms = [vm("web-1"), vm("web-2", status="configured")]
    drift = [{"vm_id": vms[1]["id"]}]
    facts = {"subscription_id": "s", "generated_at": "t0", "virtual_machines": vms, "summary": {"virtual_machines": 2}, "stale_rules": [], "drift": drift}
    result = save_facts(str(tmp_path / "before.json"), facts)
    assert "virtual_machines" not in result
    from_file = select(result)
    assert from_file == select(vms, drift=drift, stale_rules=[])
    assert from_file["drifted"] == [{"id": vms[1]["id"]}]  # the file's drift list, as the role no longer passes it
    assert jit_fleet_report(from_file, result, None, {"changed": False}) == jit_fleet_report(from_file, facts, None, {"changed": False})
    (tmp_path / "before.json").unlink()
    with pytest.raises(AnsibleFilterError, match="cannot read .*before.json.*must run on the controller"):
        select(result)
