"""Admin API: faults, stats, reset, state, clock, config."""

import threading
import time

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from simtest import SUB, policy_body, port

from armsim.server import operation_name
from armsim.testing import ArmSimError

NSGS = f"/subscriptions/{SUB}/providers/Microsoft.Network/networkSecurityGroups"


def test_429_retry_after_handled_by_sdk(sim, clients):
    sim.fault(method="GET", path_contains="networkSecurityGroups", status=429, retry_after=1, times=2)
    started = time.monotonic()
    assert len(list(clients[2].network_security_groups.list_all())) == 5
    assert time.monotonic() - started >= 1.9  # waited Retry-After twice
    stats = sim.stats()
    assert stats["by_operation"]["GET networkSecurityGroups"] == 3 and stats["by_status"]["429"] == 2
    assert sim.admin("GET", "/faults") == []


def test_429_raw(arm, sim):
    sim.fault(method="GET", path_contains="networkSecurityGroups", status=429, retry_after=7)
    r = arm.call("GET", NSGS)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7" and r.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    assert r.json()["error"]["code"] == "TooManyRequests"
    assert arm.call("GET", NSGS).status_code == 200  # used up


@pytest.mark.parametrize(("status", "code"), [(500, "InternalServerError"), (503, "ServiceUnavailable"), (409, "AnotherOperationInProgress")])
def test_status_faults(arm, sim, status, code):
    sim.fault(method="GET", path_contains="virtualMachines", status=status, times=1)
    r = arm.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines")
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_sdk_retries_503(sim, clients):
    sim.fault(method="GET", path_contains="virtualMachines", status=503, retry_after=1, times=1)
    assert len(list(clients[3].virtual_machines.list_all())) == 6


def test_unlimited_fault_surfaces(sim, clients):
    sim.fault(method="PUT", path_contains="jitNetworkAccessPolicies", status=500, times=-1)
    from azure.mgmt.security.v2020_01_01 import models as m

    policy = m.JitNetworkAccessPolicy(kind="Basic", virtual_machines=[])
    with pytest.raises(HttpResponseError) as exc:
        clients[1].jit_network_access_policies.create_or_update("rg-web", "westeurope", "default", policy, retry_total=0)
    assert exc.value.status_code == 500
    assert len(sim.admin("GET", "/faults")) == 1
    sim.clear_faults()
    assert sim.admin("GET", "/faults") == []


def test_reset_fault_drops_connection(arm, sim, clients):
    sim.fault(method="GET", path_contains="publicIPAddresses", kind="reset", times=1)
    with pytest.raises(Exception):  # noqa: B017 - requests raises a ConnectionError subclass
        arm.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/publicIPAddresses")
    sim.fault(method="GET", path_contains="publicIPAddresses", kind="reset", times=1)
    try:
        assert len(list(clients[2].public_ip_addresses.list_all())) == 1  # the SDK retries a dropped GET
    except (ServiceRequestError, ServiceResponseError):
        pytest.fail("the SDK should have retried")


def test_latency_fault(arm, sim):
    sim.fault(method="GET", path_contains="resourcegroups", kind="latency", latency_ms=400, times=1)
    started = time.monotonic()
    assert arm.call("GET", f"/subscriptions/{SUB}/resourcegroups").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_barrier_fault_holds_requests_until_all_parties_arrive(arm, sim):
    sim.fault(method="GET", path_contains="resourcegroups", kind="barrier", parties=2, timeout_ms=20000, times=2)
    answered = []

    def call():
        arm.call("GET", f"/subscriptions/{SUB}/resourcegroups")
        answered.append(time.monotonic())

    before = sim.stats()["requests"]
    first = threading.Thread(target=call)
    first.start()
    deadline = time.monotonic() + 20
    while sim.stats()["requests"] <= before:  # counted on arrival, before the barrier
        assert time.monotonic() < deadline, "the first request never arrived"
        time.sleep(0.01)
    assert not answered, "the first request must wait for its partner"
    second_sent = time.monotonic()
    call()
    first.join(20)
    assert len(answered) == 2 and min(answered) >= second_sent
    assert sim.admin("GET", "/faults") == []
    started = time.monotonic()
    arm.call("GET", f"/subscriptions/{SUB}/resourcegroups")  # the barrier is used up: no wait
    assert time.monotonic() - started < 10  # far below the 20 s a barrier would hold it


def test_barrier_fault_times_out_and_answers_normally(arm, sim):
    sim.fault(method="GET", path_contains="resourcegroups", kind="barrier", parties=2, timeout_ms=300, times=1)
    started = time.monotonic()
    assert arm.call("GET", f"/subscriptions/{SUB}/resourcegroups").status_code == 200
    assert 0.3 <= time.monotonic() - started < 5


def test_fault_on_token_path(arm, sim):
    sim.fault(method="POST", path_contains="oauth2", status=503)
    assert arm.token().status_code == 503
    assert arm.token().status_code == 200


def test_bad_fault_specs(sim):
    for spec in ({"kind": "nonsense"}, {"status": 200}, {"status": 500, "times": 0}, {}, {"kind": "barrier", "parties": 1}):
        with pytest.raises(ArmSimError):
            sim.fault(**spec)


def test_stats_counting(arm, sim):
    sim.reset_stats()
    arm.call("GET", NSGS)
    arm.call("GET", f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web/securityRules/AllowHttps")
    arm.call("DELETE", f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web/securityRules/AllowHttps")
    arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)])))
    arm.policy("GET")
    stats = sim.stats()
    assert (stats["requests"], stats["reads"], stats["writes"]) == (5, 3, 2)
    assert stats["by_method"] == {"GET": 3, "DELETE": 1, "PUT": 1}
    assert stats["by_operation"] == {
        "GET networkSecurityGroups": 1,
        "GET securityRules": 1,
        "DELETE securityRules": 1,
        "PUT jitNetworkAccessPolicies": 1,
        "GET jitNetworkAccessPolicies": 1,
    }
    sim.reset_stats()
    assert sim.stats()["requests"] == 0
    assert sim.requests() == []


def test_operation_names():
    assert operation_name("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines") == "GET virtualMachines"
    assert operation_name("GET", f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/instanceView") == "GET instanceView"
    path = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default/initiate"
    assert operation_name("POST", path) == "POST initiate"
    assert operation_name("GET", f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope/operations/abc") == "GET operations"
    assert operation_name("GET", f"/subscriptions/{SUB}/resourcegroups") == "GET resourcegroups"
    assert operation_name("GET", f"/subscriptions/{SUB}") == "GET subscriptions"


def test_reset_restores_seed(arm, sim):
    arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)])))
    sim.fault(method="GET", path_contains="nothing-matches", status=500)
    sim.advance(100)
    sim.reset()
    assert sim.stats()["requests"] == 0 and sim.admin("GET", "/faults") == []
    assert sim.admin("GET", "/clock")["offset_seconds"] == 0
    state = sim.state()
    assert state["jit_policies"] == []
    nsg = next(n for n in state["network_security_groups"] if n["name"] == "nsg-web-1")
    assert nsg["properties"]["securityRules"] == []


def test_state_dump(sim):
    state = sim.state()
    assert state["subscription_id"] == SUB
    assert {v["name"] for v in state["virtual_machines"]} == {"web-1", "web-2", "win-1", "bare-1", "off-1", "db-1"}
    assert {"network_interfaces", "network_security_groups", "virtual_networks", "public_ip_addresses", "jit_policies", "resource_groups"} <= set(state)
    assert state["virtual_machines"][0]["properties"]["instanceView"]["statuses"]


def test_admin_on_https_port(arm):
    r = arm.session.get(arm.base + "/admin/stats", verify=arm.sim.info["ca_bundle"])
    assert r.status_code == 200 and "requests" in r.json()


def test_clock_and_date_header(arm, sim):
    sim.advance(86400 * 2)
    r = arm.call("GET", f"/subscriptions/{SUB}")
    server_date = time.mktime(time.strptime(r.headers["Date"], "%a, %d %b %Y %H:%M:%S GMT")) - time.timezone
    assert server_date - time.time() > 86400
    with pytest.raises(ArmSimError):
        sim.advance(-1)


def test_config(sim):
    assert sim.config(page_size=3)["page_size"] == 3
    assert sim.config()["apply_delay"] == 0
