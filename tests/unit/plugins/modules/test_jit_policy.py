"""Pure steps of the jit_policy module: option validation, target resolution, reconciliation loop."""

import copy

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm, _jit
from ansible_collections.jitaccess.azure.plugins.modules import jit_policy as mod

SUB = "00000000-0000-0000-0000-000000000001"


def vm_id(name, rg="rg-web"):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def port(number, prefix="*", duration="PT3H", protocol="TCP"):
    return {"number": number, "protocol": protocol, "allowed_source_address_prefix": prefix, "max_request_access_duration": duration}


def params(vms, **extra):
    base = {"virtual_machines": vms, "ports": None, "policy_name": "default", "state": "present", "purge_virtual_machines": False, "skip_unsupported": False}
    base.update(extra)
    return base


def ref(name, rg="rg-web", ports=None):
    return {"id": None, "name": name, "resource_group": rg, "ports": ports}


def record(name, rg="rg-web", location="westeurope", os_type="Linux", reason=None):
    return {"id": vm_id(name, rg), "name": name, "resource_group": rg, "location": location, "os_type": os_type, "unsupported_reason": reason}


def topology(*records):
    return {_arm.normalize_id(item["id"]): item for item in records}


KEY = _arm.PolicyKey(SUB, "rg-web", "westeurope", "default")


# --- validate_options -------------------------------------------------------------------------


def test_validate_options_resolves_ids_and_normalises_ports():
    refs, default_ports = mod.validate_options(
        params(
            [ref("web-1"), {"id": vm_id("web-2"), "name": None, "resource_group": None, "ports": [port(8443, duration="90m")]}], ports=[port(22, duration="3h")]
        ),
        SUB,
    )
    assert [item["id"] for item in refs] == [vm_id("web-1"), vm_id("web-2")]
    assert refs[0]["ports"] is None
    assert refs[1]["ports"] == [{"number": 8443, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H30M"}]
    assert default_ports[None][0]["maxRequestAccessDuration"] == "PT3H"


def test_validate_options_ports_by_os_type():
    _refs, default_ports = mod.validate_options(
        params(
            [ref("web-1")],
            ports=[port(2222)],
            ports_by_os_type={"LINUX": [{"number": "22"}], "windows": [{"number": 3389, "max_request_access_duration": "1h"}]},
        ),
        SUB,
    )
    assert default_ports[None][0]["number"] == 2222
    assert default_ports["linux"] == [{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]
    assert default_ports["windows"][0]["maxRequestAccessDuration"] == "PT1H"


@pytest.mark.parametrize(
    "options, message",
    [
        (params([]), "virtual_machines is empty"),
        (params([ref("web-1")], ports=[]), "ports is empty"),
        (params([ref("web-1")], ports=[port(70000)]), "port 70000 is out of range: allowed 0-65535"),
        (params([ref("web-1")], ports=[port(-1)]), "port -1 is out of range"),
        (params([ref("web-1")], ports=[port(22, duration="2m")]), "is out of range: allowed PT5M"),
        (params([ref("web-1")], ports=[port(22, duration="25h")]), "PT25H"),
        (params([ref("web-1")], ports=[port(22, duration="soon")]), "'soon' is not a valid duration"),
        (params([ref("web-1")], ports=[port(22, prefix="300.1.1.1")]), "'300.1.1.1' is not valid"),
        (params([ref("web-1")], ports=[port(22, prefix="10.0.0.0/33")]), "'10.0.0.0/33' is not valid"),
        (params([ref("web-1")], ports=[port(22, prefix="2001:db8::/64")]), "IPv6"),
        (params([ref("web-1")], ports=[dict(port(22), allowed_source_address_prefixes=["10.0.0.0/8"])]), "mutually exclusive"),
        (params([ref("web-1")], ports=[port(22), port(22)]), "port 22 is listed more than once"),
        (params([ref("web-1"), {"id": vm_id("WEB-1"), "name": None, "resource_group": None, "ports": None}]), "listed more than once in virtual_machines"),
        (params([{"id": "/subscriptions/x/virtualMachines/web-1", "name": None, "resource_group": None, "ports": None}]), "is malformed"),
        (params([{"id": None, "name": "web-1", "resource_group": None, "ports": None}]), "is incomplete"),
        (params([ref("web-1", ports=[])]), "ports of virtual machine web-1 is empty"),
        (params([ref("web-1")], policy_name="a/b"), "policy_name 'a/b' is not valid"),
        (params([ref("web-1")], ports=[dict(port(22), allowed_source_address_prefix="10.0.0.1/8")]), "has host bits set: use 10.0.0.0/8"),
        (params([{"id": vm_id("web-1").replace("Compute/virtualMachines", "Network/networkInterfaces"), "ports": None}]), "is not a virtual machine id"),
        (params([ref("web-1")], ports_by_os_type={"Solaris": [port(22)]}), "unknown OS type 'Solaris': allowed Linux, Windows"),
        (params([ref("web-1")], ports_by_os_type={"linux": [port(22)], "Linux": [port(23)]}), "lists OS type Linux more than once"),
        (params([ref("web-1")], ports_by_os_type={"linux": []}), "ports_by_os_type['linux'] must be a non-empty list"),
        (params([ref("web-1")], ports_by_os_type={"linux": [port(70000)]}), "port 70000 is out of range"),
        (params([ref("web-1")], ports_by_os_type={"windows": [{"number": 3389, "colour": "red"}]}), "unknown key(s) colour"),
    ],
)
def test_validate_options_refuses_bad_input(options, message):
    with pytest.raises(_arm.JitValidationError, match=None) as info:
        mod.validate_options(options, SUB)
    assert message in str(info.value)


def test_validate_options_ignores_ports_for_absent():
    refs, default_ports = mod.validate_options(params([ref("web-1", ports=[port(70000)])], ports=[port(70000)], state="absent"), SUB)
    assert default_ports == {} and refs[0]["ports"] is None


# --- resolve_targets / desired_entry ----------------------------------------------------------


def test_resolve_targets_names_every_unknown_vm():
    refs = [{"id": vm_id("ghost-1"), "ports": None}, {"id": vm_id("web-1"), "ports": None}, {"id": vm_id("ghost-2"), "ports": None}]
    with pytest.raises(_arm.JitValidationError) as info:
        mod.resolve_targets(refs, topology(record("web-1")))
    assert "ghost-1" in str(info.value) and "ghost-2" in str(info.value) and "web-1" not in str(info.value)


def test_resolve_targets_unsupported_fails_or_is_skipped():
    topo = topology(record("web-1"), record("bare-1", reason="no network security group on any NIC or subnet of the VM"))
    refs = [{"id": vm_id("web-1").lower(), "ports": None}, {"id": vm_id("bare-1"), "ports": None}]
    with pytest.raises(_arm.JitValidationError, match="bare-1 .no network security group.*skip_unsupported"):
        mod.resolve_targets(refs, topo)
    targets, skipped = mod.resolve_targets(refs, topo, skip_unsupported=True)
    assert [item["id"] for item in targets] == [vm_id("web-1")]  # Azure's spelling, not the user's
    assert skipped == [
        {"id": vm_id("bare-1"), "name": "bare-1", "resource_group": "rg-web", "reason": "no network security group on any NIC or subnet of the VM"}
    ]
    targets, skipped = mod.resolve_targets(refs, topo, present=False)
    assert len(targets) == 2 and skipped == []


def test_desired_entry_os_defaults_and_overrides():
    linux = {"id": vm_id("web-1"), "record": record("web-1"), "ports": None}
    windows = {"id": vm_id("win-1"), "record": record("win-1", os_type="Windows"), "ports": None}
    assert [p["number"] for p in mod.desired_entry(linux, {})["ports"]] == [22]
    assert [p["number"] for p in mod.desired_entry(windows, {})["ports"]] == [3389, 5985, 5986]
    defaults = {None: _jit.normalize_port_rules([port(2222)])}
    assert [p["number"] for p in mod.desired_entry(windows, defaults)["ports"]] == [2222]
    by_os = dict(defaults, windows=_jit.normalize_port_rules([port(5986)]))
    assert [p["number"] for p in mod.desired_entry(windows, by_os)["ports"]] == [5986]
    assert [p["number"] for p in mod.desired_entry(linux, by_os)["ports"]] == [2222]  # no Linux entry: ports
    override = dict(windows, ports=_jit.normalize_port_rules([port(443)]))
    assert [p["number"] for p in mod.desired_entry(override, by_os)["ports"]] == [443]
    unknown = {"id": vm_id("odd-1"), "record": record("odd-1", os_type=None), "ports": None}
    with pytest.raises(_arm.JitValidationError, match="odd-1 has OS type None.*set ports"):
        mod.desired_entry(unknown, {})


# --- reconcile_policy -------------------------------------------------------------------------


def entry(name, *numbers, duration="PT3H"):
    return {
        "id": vm_id(name),
        "ports": [{"number": n, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": duration} for n in numbers],
    }


class FakeApi:
    """In-memory JIT policy store; ``after_put`` lets a test play a concurrent writer."""

    def __init__(self, entries=None, after_put=None):
        self.entries = copy.deepcopy(entries)
        self.after_put = after_put
        self.calls = []

    def get(self, key):
        self.calls.append("GET")
        if self.entries is None:
            return None
        return {"id": _arm.policy_key_id(key), "properties": {"virtualMachines": copy.deepcopy(self.entries)}}

    def put(self, key, body):
        self.calls.append("PUT")
        self.entries = copy.deepcopy(body["properties"]["virtualMachines"])
        if self.after_put:
            self.after_put(self)
        return body

    def delete(self, key):
        self.calls.append("DELETE")
        self.entries = None


def test_reconcile_creates_merges_and_is_idempotent():
    api = FakeApi()
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False)
    assert out["action"] == "created" and out["attempts"] == 1 and api.calls == ["GET", "PUT", "GET"]
    api.entries.append(entry("other", 3389))
    out = mod.reconcile_policy(KEY, [entry("web-2", 22)], [], False, api, check_mode=False)
    assert out["action"] == "updated" and [e["id"] for e in api.entries] == [vm_id("web-1"), vm_id("other"), vm_id("web-2")]
    api.calls.clear()
    same = [entry("web-2", 22, duration="PT180M")]
    same[0]["id"] = same[0]["id"].upper()
    out = mod.reconcile_policy(KEY, same, [], False, api, check_mode=False)
    assert out == dict(out, action="unchanged", changed=False, attempts=0) and api.calls == ["GET"]


def test_reconcile_check_mode_writes_nothing():
    api = FakeApi([entry("other", 22)])
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], True, api, check_mode=True)
    assert out["changed"] and out["action"] == "updated" and api.calls == ["GET"]
    assert [e["id"] for e in out["after"]] == [vm_id("web-1")]  # purge preview


def test_reconcile_absent_deletes_empty_policy_and_keeps_others():
    api = FakeApi([entry("web-1", 22), entry("other", 22)])
    out = mod.reconcile_policy(KEY, [], [vm_id("web-1")], False, api, check_mode=False)
    assert out["action"] == "updated" and api.entries == [entry("other", 22)]
    out = mod.reconcile_policy(KEY, [], [vm_id("other").lower()], False, api, check_mode=False)
    assert out["action"] == "deleted" and api.entries is None and api.calls[-3:] == ["GET", "DELETE", "GET"]
    out = mod.reconcile_policy(KEY, [], [vm_id("other")], False, api, check_mode=False)
    assert out["action"] == "unchanged" and not out["changed"]


def test_reconcile_repairs_a_lost_update():
    stale = [entry("other", 22), entry("theirs", 22)]

    def stale_writer(api):
        if api.calls.count("PUT") == 1:  # another writer PUTs a list read before our write
            api.entries = copy.deepcopy(stale)

    api = FakeApi([entry("other", 22)], after_put=stale_writer)
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False)
    assert out["attempts"] == 2 and api.calls == ["GET", "PUT", "GET", "PUT", "GET"]
    assert [e["id"] for e in api.entries] == [vm_id("other"), vm_id("theirs"), vm_id("web-1")]
    assert out["concurrent"] == []


def test_reconcile_reports_entries_another_writer_removed_without_restoring_them():
    def remover(api):
        if api.calls.count("PUT") == 1:
            api.entries = [entry("web-1", 22)]  # "other" removed on purpose by someone else

    api = FakeApi([entry("other", 22)], after_put=remover)
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False)
    assert out["attempts"] == 1 and out["concurrent"] == [_arm.normalize_id(vm_id("other"))]
    assert api.entries == [entry("web-1", 22)]


def test_reconcile_gives_up_after_bounded_attempts():
    def always_stale(api):
        api.entries = [entry("other", 22)]

    api = FakeApi([entry("other", 22)], after_put=always_stale)
    with pytest.raises(mod.PolicyConvergenceError, match="did not converge after 3 writes.*web-1"):
        mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False)
    assert api.calls.count("PUT") == 3


def test_returned_entries_are_snake_case_and_sorted():
    raw = {
        "id": vm_id("web-1"),
        "ports": [
            {"number": 3389, "protocol": "tcp", "allowedSourceAddressPrefixes": ["10.0.0.0/8", "1.2.3.4"], "maxRequestAccessDuration": "PT180M"},
            {"number": 22},
        ],
    }
    assert mod.returned_entries([raw]) == [
        {
            "id": vm_id("web-1"),
            "ports": [
                {"number": 22, "protocol": "TCP", "allowed_source_address_prefixes": ["*"], "max_request_access_duration": "PT3H"},
                {"number": 3389, "protocol": "TCP", "allowed_source_address_prefixes": ["1.2.3.4", "10.0.0.0/8"], "max_request_access_duration": "PT3H"},
            ],
        }
    ]


# --- drift: deny rules another tool deleted ---------------------------------------------------

NSG = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/"


def deny_rule(name, address, *ports, prefix="MicrosoftDefenderForCloud-JITRule_1_ABC"):
    return {
        "name": prefix + name,
        "properties": {
            "description": f"MDC JIT Network Access rule for policy 'default' of VM '{name}'.",
            "protocol": "*",
            "sourcePortRange": "*",
            "destinationPortRanges": [str(number) for number in ports],
            "sourceAddressPrefix": "*",
            "destinationAddressPrefix": address,
            "access": "Deny",
            "priority": 4096,
            "direction": "Inbound",
        },
    }


def nsg(name, *rules):
    return {"id": NSG + name, "name": name, "properties": {"securityRules": list(rules)}}


def networked(name, address, subnet_nsg=None, nic_nsg=None):
    item = record(name)
    item["nics"] = [{"private_ip": address, "subnet_nsg_id": subnet_nsg and NSG + subnet_nsg, "nic_nsg_id": nic_nsg and NSG + nic_nsg}]
    return item


def nsgs(*items):
    return {_arm.normalize_id(item["id"]): item for item in items}


def test_find_drift_names_each_nsg_ip_and_port_missing():
    topo = topology(networked("web-1", "10.1.0.4", "nsg-sub", "nsg-nic"), networked("web-2", "10.1.0.5", "nsg-sub"))
    entries = [entry("web-1", 22, 3389), entry("web-2", 22)]
    complete = nsgs(
        nsg("nsg-sub", deny_rule("web-1", "10.1.0.4", 22, 3389), deny_rule("web-2", "10.1.0.5", 22)), nsg("nsg-nic", deny_rule("web-1", "10.1.0.4", 22, 3389))
    )
    assert mod.find_drift(entries, topo, complete) == []
    # An IaC apply replaced the subnet NSG's rules; the NIC NSG lost only port 3389's deny rule.
    purged = nsgs(nsg("nsg-sub"), nsg("nsg-nic", deny_rule("web-1", "10.1.0.4", 22)))
    assert [(item["vm_name"], item["nsg_id"].rsplit("/", 1)[1], item["missing_ports"]) for item in mod.find_drift(entries, topo, purged)] == [
        ("web-1", "nsg-sub", [22, 3389]),
        ("web-1", "nsg-nic", [3389]),
        ("web-2", "nsg-sub", [22]),
    ]
    # A deny rule for another address, or an allow rule, does not count; older SecurityCenter names do.
    other = nsgs(nsg("nsg-sub", deny_rule("web-1", "10.1.0.9", 22)))
    assert mod.find_drift([entry("web-2", 22)], topo, other)[0]["missing_ports"] == [22]
    legacy = nsgs(nsg("nsg-sub", deny_rule("web-2", "10.1.0.5", 22, prefix="SecurityCenter-JITRule_1_ABC")))
    assert mod.find_drift([entry("web-2", 22)], topo, legacy) == []
    assert mod.find_drift([entry("gone", 22)], topo, purged) == []  # a VM not read is not judged


def test_reconcile_writes_a_drifted_policy_once_unchanged_or_only_reports_it():
    drifted = [{"vm_id": vm_id("web-1"), "vm_name": "web-1", "nsg_id": NSG + "nsg-sub", "private_ip": "10.1.0.4", "missing_ports": [22]}]
    api = FakeApi([entry("web-1", 22), entry("other", 3389)])
    before = copy.deepcopy(api.entries)
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=True, drift=lambda entries: drifted)
    assert (out["action"], out["changed"], out["drift"], api.calls) == ("repaired", True, drifted, ["GET"])
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False, drift=lambda entries: drifted)
    assert (out["action"], out["attempts"]) == ("repaired", 1) and api.calls[1:] == ["GET", "PUT", "GET"]
    assert api.entries == before  # the same entries, written again
    api.calls.clear()
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False, drift=lambda entries: drifted, repair=False)
    assert (out["action"], out["changed"], out["drift"], api.calls) == ("unchanged", False, drifted, ["GET"])
    api.calls.clear()
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False, drift=lambda entries: [])
    assert (out["action"], api.calls) == ("unchanged", ["GET"])
    # A policy that changes anyway is written once; the drift it repairs is reported with it.
    out = mod.reconcile_policy(KEY, [entry("web-3", 22)], [], False, FakeApi([entry("web-1", 22)]), check_mode=False, drift=lambda entries: drifted)
    assert (out["action"], out["attempts"], out["drift"]) == ("updated", 1, drifted)


def test_reconcile_can_leave_existing_entries_as_they_are():
    api = FakeApi([entry("web-1", 22, 3389)])
    out = mod.reconcile_policy(KEY, [entry("web-1", 22), entry("web-2", 22)], [], False, api, check_mode=False, update_existing=False)
    assert out["action"] == "updated" and api.entries == [entry("web-1", 22, 3389), entry("web-2", 22)]
    api.calls.clear()
    out = mod.reconcile_policy(KEY, [entry("web-1", 22)], [], False, api, check_mode=False, update_existing=False)
    assert out["action"] == "unchanged" and api.calls == ["GET"]


def test_a_throttled_write_is_retried_after_a_fresh_read_never_with_the_stale_body():
    """The pipeline's own retry would resend the merged body minutes later and drop what another
    writer added meanwhile; jit_policy waits, reads again, merges again and writes again."""
    api = FakeApi([entry("web-1", 22)])
    throttled = []
    original_put = api.put

    def put(key, body):
        if not throttled:
            throttled.append(body)
            api.calls.append("PUT 429")
            api.entries.append(entry("other", 3389))  # another writer, while we wait out Retry-After
            raise mod.TransientWriteError(RuntimeError("429 TooManyRequests"), 42)
        return original_put(key, body)

    api.put = put
    slept = []
    out = mod.reconcile_policy(KEY, [entry("web-2", 22)], [], False, api, check_mode=False, sleep=slept.append)
    assert slept == [42] and api.calls == ["GET", "PUT 429", "GET", "PUT", "GET"]
    assert [item["id"].rsplit("/", 1)[1] for item in api.entries] == ["web-1", "other", "web-2"]  # nothing lost
    assert out["attempts"] == 1 and out["action"] == "updated"


def test_transient_write_errors_are_bounded():
    api = FakeApi([entry("web-1", 22)])

    def put(key, body):
        raise mod.TransientWriteError(RuntimeError("503"), 1)

    api.put = put
    with pytest.raises(mod.TransientWriteError):
        mod.reconcile_policy(KEY, [entry("web-2", 22)], [], False, api, check_mode=False, sleep=lambda seconds: None)
    assert api.calls.count("GET") == 1 + mod.MAX_TRANSIENT_RETRIES


def test_a_write_that_went_through_before_failing_is_not_repeated():
    api = FakeApi([entry("web-1", 22)])
    original_put = api.put
    failed = []

    def put(key, body):
        original_put(key, body)  # applied, but the answer was lost
        if not failed:
            failed.append(True)
            raise mod.TransientWriteError(RuntimeError("connection reset"), 1)
        return body

    api.put = put
    out = mod.reconcile_policy(KEY, [entry("web-2", 22)], [], False, api, check_mode=False, sleep=lambda seconds: None)
    assert api.calls == ["GET", "PUT", "GET"] and out["action"] == "updated"


def test_the_put_body_keeps_what_the_get_returned_that_this_run_does_not_change():
    """A PUT replaces the whole policy: requests and unknown properties go back as they were (issue 15)."""
    current = {
        "id": "p",
        "kind": "Basic",
        "location": "westeurope",
        "properties": {"virtualMachines": [], "requests": [{"startTimeUtc": "2026-11-21T09:00:00Z"}], "provisioningState": "Succeeded", "newThing": 1},
    }
    body = mod.policy_body([{"id": "vm"}], current)
    assert body == {"kind": "Basic", "properties": {"virtualMachines": [{"id": "vm"}], "requests": current["properties"]["requests"], "newThing": 1}}
    assert mod.policy_body([], None) == {"kind": "Basic", "properties": {"virtualMachines": []}}


def _batch(api, plans):
    """Reconcile ``plans`` as run() does with deferred verification (the write's answer as its read-back)."""
    outcomes = [mod.reconcile_policy(key, desired, removed, False, api, check_mode=False) for key, desired, removed in plans]
    api.list_policies = lambda subscriptions: {_arm.normalize_id(_arm.policy_key_id(plan[0])): api.get(plan[0]) for plan in plans}
    calls = []

    def reconcile(key, desired, removed):
        calls.append(key)
        return mod.reconcile_policy(key, desired, removed, False, api, check_mode=False)

    policies = [mod.policy_result(plan[0], outcome) for plan, outcome in zip(plans, outcomes, strict=True)]
    return outcomes, policies, reconcile, calls


def test_batch_verification_leaves_a_policy_written_as_asked_alone():
    api = FakeApi([entry("other", 22)])
    plans = [(KEY, [entry("web-1", 22)], [])]
    outcomes, policies, reconcile, calls = _batch(api, plans)
    mod.verify_batch(api, plans, outcomes, policies, reconcile)
    assert calls == [] and outcomes[0]["attempts"] == 1 and policies[0]["attempts"] == 1


def test_batch_verification_repairs_a_write_another_writer_replaced_afterwards():
    api = FakeApi([entry("other", 22)])
    plans = [(KEY, [entry("web-1", 22)], [])]
    outcomes, policies, reconcile, calls = _batch(api, plans)
    api.entries = [entry("other", 22), entry("theirs", 22)]  # a stale list PUT after our write: web-1 is gone
    mod.verify_batch(api, plans, outcomes, policies, reconcile)
    assert calls == [KEY]
    assert [e["id"] for e in api.entries] == [vm_id("other"), vm_id("theirs"), vm_id("web-1")]  # both writers' VMs
    assert outcomes[0]["attempts"] == 2 and policies[0]["attempts"] == 2 and policies[0]["action"] == "updated"


def test_batch_verification_reports_what_another_writer_removed():
    api = FakeApi([entry("other", 22)])
    plans = [(KEY, [entry("web-1", 22)], [])]
    outcomes, policies, reconcile, calls = _batch(api, plans)
    api.entries = [entry("web-1", 22)]  # another writer removed "other" on purpose after our write
    mod.verify_batch(api, plans, outcomes, policies, reconcile)
    assert calls == [KEY] and outcomes[0]["concurrent"] == [vm_id("other").lower()]
    assert api.entries == [entry("web-1", 22)]  # not restored: its removal was the other writer's choice
