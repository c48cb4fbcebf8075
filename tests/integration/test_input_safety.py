"""Bad input fails before the first write, through real ansible-playbook against armsim (issue 14,
section 4): loose numbers, a source that admits a large part of the Internet, and NSGs that cannot
take JIT's rules (Azure's 1,000-rule limit). Each case asserts armsim wrote nothing."""

from harness import run_playbook

SUB = "00000000-0000-0000-0000-000000000001"


def _rules(count, start=100):
    return [{"name": "Deny-%04d" % index, "priority": start + index, "access": "Deny", "destination_ports": [str(20000 + index)]} for index in range(count)]


ARMSIM_SEED = {
    "subscription_id": SUB,
    "resource_groups": [
        {
            "name": "rg-safety",
            "location": "westeurope",
            "network_security_groups": [
                {"name": "nsg-web", "rules": []},
                {"name": "nsg-crowded", "rules": _rules(1000)},  # full: no deny rule fits
                {"name": "nsg-nearly", "rules": _rules(999)},  # one more fits: the deny rule, then no allow rule
            ],
            "virtual_networks": [
                {
                    "name": "vnet",
                    "address_space": "10.9.0.0/16",
                    "subnets": [
                        {"name": "web", "prefix": "10.9.1.0/24", "nsg": "nsg-web"},
                        {"name": "crowded", "prefix": "10.9.2.0/24", "nsg": "nsg-crowded"},
                        {"name": "nearly", "prefix": "10.9.3.0/24", "nsg": "nsg-nearly"},
                    ],
                }
            ],
            "virtual_machines": [
                {"name": "web-1", "nics": [{"subnet": "vnet/web"}]},
                {"name": "crowded-1", "nics": [{"subnet": "vnet/crowded"}]},
                {"name": "nearly-1", "nics": [{"subnet": "vnet/nearly"}]},
            ],
        }
    ],
    "jit_policies": [{"name": "default", "resource_group": "rg-safety", "virtual_machines": ["web-1"]}],
}
ARMSIM_OPTIONS = {"apply_delay": 0.2}


def vm(name):
    return {"name": name, "resource_group": "rg-safety"}


def play(*tasks):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [dict(task, ignore_errors=True) for task in tasks]}]


def writes(armsim):
    by_operation = armsim.stats()["by_operation"]
    return {name: count for name, count in by_operation.items() if name.split(" ", 1)[0] in ("PUT", "POST", "DELETE", "PATCH")}


def test_loose_numbers_and_broad_sources_fail_before_any_write(armsim):
    request = "jitaccess.azure.jit_request"
    tasks = [
        {"name": "fullwidth port", request: {"virtual_machines": [vm("web-1")], "ports": ["２２"], "source_address_prefixes": ["203.0.113.7"]}},
        {"name": "signed port", request: {"virtual_machines": [dict(vm("web-1"), ports=["+22"])], "source_address_prefixes": ["203.0.113.7"]}},
        {"name": "float timeout", request: {"virtual_machines": [vm("web-1")], "wait_timeout": "1e3", "source_address_prefixes": ["203.0.113.7"]}},
        {"name": "arabic duration", request: {"virtual_machines": [vm("web-1")], "duration": "PT١H", "source_address_prefixes": ["203.0.113.7"]}},
        {"name": "half the internet", request: {"virtual_machines": [vm("web-1")], "source_address_prefixes": ["0.0.0.0/1"]}},
        {"name": "policy port", "jitaccess.azure.jit_policy": {"virtual_machines": [vm("web-1")], "ports": [{"number": "٢٢"}]}},
    ]
    armsim.reset_stats()
    run = run_playbook(armsim, play(*tasks))
    assert run.rc == 0, run.stdout[-3000:]
    expected = {
        "fullwidth port": "ports '２２' is not a whole number: allowed ASCII digits 0-9",
        "signed port": "virtual_machines[0].ports '+22' is not a whole number",
        "float timeout": "wait_timeout '1e3' is not a whole number",
        "arabic duration": "duration 'PT١H' is not a valid duration",
        "half the internet": "'0.0.0.0/1' admits 2,147,483,648 addresses (broader than /8",
        "policy port": "ports[0].number '٢٢' is not a whole number",
    }
    for name, fragment in expected.items():
        result = run.result(name)
        assert result["failed"] and fragment in result["msg"], (name, result["msg"])
        assert "Traceback" not in result["msg"] and "Traceback" not in result.get("exception", "")
    assert writes(armsim) == {}


def test_the_explicit_opt_in_admits_a_broad_source(armsim):
    task = {
        "name": "open",
        "jitaccess.azure.jit_request": {"virtual_machines": [vm("web-1")], "source_address_prefixes": ["0.0.0.0/1"], "allow_any_source": True},
    }
    run = run_playbook(armsim, play(task))
    result = run.result("open")
    assert not result.get("failed"), result.get("msg")
    assert result["opened"][0]["source"] == "0.0.0.0/1"


def test_an_nsg_without_room_for_jit_fails_before_any_write(armsim):
    policy = "jitaccess.azure.jit_policy"
    armsim.reset_stats()
    run = run_playbook(armsim, play({"name": "crowded", policy: {"virtual_machines": [vm("web-1"), vm("crowded-1")]}}))
    result = run.result("crowded")
    assert result["failed"] and not result["changed"]
    assert "NSG nsg-crowded cannot take the JIT deny rules of VM(s) crowded-1: it has 1000 security rules and Azure allows 1000" in result["msg"]
    assert "Nothing was written" in result["msg"]
    assert writes(armsim) == {}

    # nsg-nearly takes the deny rule (its 1,000th rule); a request then has no room for its allow rule.
    run = run_playbook(
        armsim,
        play(
            {"name": "policy", policy: {"virtual_machines": [vm("nearly-1")]}},
            {"name": "request", "jitaccess.azure.jit_request": {"virtual_machines": [vm("nearly-1")], "source_address_prefixes": ["203.0.113.7"]}},
        ),
    )
    assert run.result("policy")["changed"] and not run.result("policy").get("failed")
    request = run.result("request")
    assert request["failed"] and "NSG nsg-nearly cannot take the 1 JIT allow rule(s) this request needs" in request["msg"], request["msg"]
    nsg = next(item for item in armsim.state()["network_security_groups"] if item["name"] == "nsg-nearly")
    assert len(nsg["properties"]["securityRules"]) == 1000
    assert "POST initiate" not in writes(armsim) and not any("initiate" in name for name in writes(armsim))
