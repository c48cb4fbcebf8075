"""Microsoft.Security/pricings: the Defender for Cloud plans of a subscription (only
``VirtualMachines``, Defender for Servers, is modelled). Just-in-time VM access exists only with
Defender for Servers Plan 2 (pricing tier ``Standard``, sub-plan ``P2``): on another subscription
armsim refuses JIT policy writes and initiates (see README, "Defender for Servers")."""

from __future__ import annotations

from armsim.arm import SEC, SUB, ArmError, Ctx, Response, json_response
from armsim.model import State

PLAN = "VirtualMachines"
API_VERSIONS = ("2023-01-01", "2024-01-01")


def jit_available(state: State) -> bool:
    return state.servers_plan.get("pricingTier") == "Standard" and state.servers_plan.get("subPlan", "P2") == "P2"


def require_jit(state: State) -> None:
    """The answer to a JIT write on a subscription without Defender for Servers Plan 2."""
    if not jit_available(state):
        raise ArmError(
            400,
            "DefenderForServersPlan2Required",
            f"Just-in-time VM access requires Microsoft Defender for Servers Plan 2 on subscription '{state.subscription_id}'"
            f" (pricing tier '{state.servers_plan.get('pricingTier')}', sub-plan '{state.servers_plan.get('subPlan', '')}').",
        )


def pricing_json(state: State) -> dict:
    props = {"pricingTier": state.servers_plan["pricingTier"], "freeTrialRemainingTime": "PT0S"}
    if "subPlan" in state.servers_plan:
        props["subPlan"] = state.servers_plan["subPlan"]
    return {
        "id": f"/subscriptions/{state.subscription_id}/providers/Microsoft.Security/pricings/{PLAN}",
        "name": PLAN,
        "type": "Microsoft.Security/pricings",
        "properties": props,
    }


def _check_api(ctx: Ctx) -> None:
    version = ctx.req.query.get("api-version", "")
    if version not in API_VERSIONS:
        raise ArmError(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid. The supported versions are '{', '.join(API_VERSIONS)}'.")


def list_pricings(ctx: Ctx, **_: str) -> Response:
    _check_api(ctx)
    return json_response({"value": [pricing_json(ctx.state)]})


def get_pricing(ctx: Ctx, name: str, **_: str) -> Response:
    _check_api(ctx)
    if name.lower() != PLAN.lower():
        raise ArmError(404, "PricingNotFound", f"Pricing '{name}' is not modelled by armsim (only {PLAN}).")
    return json_response(pricing_json(ctx.state))


def put_pricing(ctx: Ctx, name: str, **_: str) -> Response:
    _check_api(ctx)
    if name.lower() != PLAN.lower():
        raise ArmError(404, "PricingNotFound", f"Pricing '{name}' is not modelled by armsim (only {PLAN}).")
    body = ctx.req.json()
    props = body.get("properties") if isinstance(body, dict) else None
    tier = props.get("pricingTier") if isinstance(props, dict) else None
    if tier not in ("Free", "Standard"):
        raise ArmError(400, "InvalidInputJson", "properties.pricingTier must be 'Free' or 'Standard'.")
    sub_plan = props.get("subPlan") or ("P2" if tier == "Standard" else None)
    if sub_plan not in (None, "P1", "P2"):
        raise ArmError(400, "InvalidInputJson", "properties.subPlan must be 'P1' or 'P2'.")
    ctx.state.servers_plan = {"pricingTier": tier, **({"subPlan": sub_plan} if tier == "Standard" else {})}
    return json_response(pricing_json(ctx.state))


PRICINGS = SUB + SEC + "/pricings"
ROUTES = [
    ("GET", PRICINGS + "$", list_pricings),
    ("GET", PRICINGS + r"/(?P<name>[^/]+)$", get_pricing),
    ("PUT", PRICINGS + r"/(?P<name>[^/]+)$", put_pricing),
]
