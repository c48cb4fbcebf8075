"""Microsoft.Resources basics: the subscription and its resource groups (read-only)."""

from armsim.arm import SUB, Ctx, Response, dumps, json_response, rg_not_found


def subscription_json(state) -> dict:
    return {
        "id": f"/subscriptions/{state.subscription_id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": state.subscription_id,
        "tenantId": state.tenant_id,
        "displayName": state.subscription_name,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    }


def rg_json(rg) -> dict:
    return {
        "id": rg.id,
        "name": rg.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": rg.location,
        "tags": rg.tags,
        "properties": {"provisioningState": "Succeeded"},
    }


def list_subscriptions(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(list(ctx.app.subscriptions.values()), lambda s: dumps(subscription_json(s)))


def get_subscription(ctx: Ctx, **_: str) -> Response:
    return json_response(subscription_json(ctx.state))


def list_rgs(ctx: Ctx, **_: str) -> Response:
    return ctx.paged(ctx.state.resource_groups.values(), lambda rg: dumps(rg_json(rg)))


def get_rg(ctx: Ctx, rg: str, **_: str) -> Response:
    group = ctx.state.rg(rg)
    if group is None:
        raise rg_not_found(rg)
    return json_response(rg_json(group))


def head_rg(ctx: Ctx, rg: str, **_: str) -> Response:
    return Response(204 if ctx.state.rg(rg) else 404)


ROUTES = [
    ("GET", r"^/subscriptions$", list_subscriptions),
    ("GET", SUB + "$", get_subscription),
    ("GET", SUB + r"/resourcegroups$", list_rgs),
    ("GET", SUB + r"/resourcegroups/(?P<rg>[^/]+)$", get_rg),
    ("HEAD", SUB + r"/resourcegroups/(?P<rg>[^/]+)$", head_rg),
]
