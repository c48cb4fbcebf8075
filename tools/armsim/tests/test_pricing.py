"""Defender for Servers (Microsoft.Security/pricings/VirtualMachines): JIT exists only with Plan 2."""

from simtest import SUB, policy_body, port

PRICING = f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings"


def test_jit_writes_need_plan_2_and_reads_still_work(arm):
    assert arm.call("GET", PRICING, api="2024-01-01").json()["value"][0]["properties"] == {
        "pricingTier": "Standard",
        "subPlan": "P2",
        "freeTrialRemainingTime": "PT0S",
    }
    for tier, sub_plan in (("Free", None), ("Standard", "P1")):
        body = {"properties": {"pricingTier": tier, **({"subPlan": sub_plan} if sub_plan else {})}}
        assert arm.call("PUT", PRICING + "/VirtualMachines", body, api="2024-01-01").status_code == 200
        r = arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)])))
        assert r.status_code == 400 and r.json()["error"]["code"] == "DefenderForServersPlan2Required", r.text
        assert "Plan 2" in r.json()["error"]["message"] and SUB in r.json()["error"]["message"]
        assert arm.jit("GET", "/providers/Microsoft.Security/jitNetworkAccessPolicies").status_code == 200
    assert arm.call("PUT", PRICING + "/VirtualMachines", {"properties": {"pricingTier": "Standard", "subPlan": "P2"}}, api="2024-01-01").status_code == 200
    assert arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)]))).status_code == 200


def test_pricing_bodies_and_versions_are_checked(arm):
    assert arm.call("PUT", PRICING + "/VirtualMachines", {"properties": {"pricingTier": "Gold"}}, api="2024-01-01").status_code == 400
    assert arm.call("GET", PRICING + "/VirtualMachines", api="2019-01-01").status_code == 400
    assert arm.call("GET", PRICING + "/SqlServers", api="2024-01-01").status_code == 404
