"""Microsoft.Resources: the subscription list, the subscription, resource groups (list, GET, HEAD), as
azure-mgmt-resource's SubscriptionClient / ResourceManagementClient (and so azure.azcollection's
azure_rm_resourcegroup_info, api-version 2022-09-01) call them; their RBAC actions; and the cloud
metadata fields azure-cli-core maps to a Cloud (azure.azcollection's ``cloud_environment`` path)."""

import copy

import pytest
import requests
from simtest import CLIENT_ID, READER_ID, SEED, SUB, TENANT, Arm

from armsim.testing import ArmSim

RG_API = "2022-09-01"  # azure.azcollection's ResourceManagementClient api-version
SUBS_API = "2022-12-01"  # azure-mgmt-resource 23.x SubscriptionClient
RG_KEYS = {"id", "name", "type", "location", "tags", "properties"}


def rg_path(name=""):
    return f"/subscriptions/{SUB}/resourcegroups" + (f"/{name}" if name else "")


def test_list_subscriptions(arm):
    r = arm.call("GET", "/subscriptions", api=SUBS_API)
    assert r.status_code == 200
    body = r.json()
    assert "nextLink" not in body
    (sub,) = body["value"]
    assert sub["id"] == f"/subscriptions/{SUB}"
    assert (sub["subscriptionId"], sub["tenantId"], sub["displayName"], sub["state"]) == (SUB, TENANT, "armsim", "Enabled")
    assert sub["authorizationSource"] == "RoleBased" and sub["subscriptionPolicies"]["spendingLimit"] == "Off"


def test_subscription_name_from_seed():
    with ArmSim(dict(copy.deepcopy(SEED), subscription_name="Contoso Production")) as sim:
        arm = Arm(sim)
        (sub,) = arm.call("GET", "/subscriptions", api=SUBS_API).json()["value"]
        assert sub["displayName"] == "Contoso Production"
        assert arm.call("GET", f"/subscriptions/{SUB}", api=SUBS_API).json() == sub


def test_get_subscription(arm):
    r = arm.call("GET", f"/subscriptions/{SUB}", api=SUBS_API)
    assert r.status_code == 200
    assert r.json() == arm.call("GET", "/subscriptions", api=SUBS_API).json()["value"][0]
    other = arm.call("GET", "/subscriptions/12345678-1234-1234-1234-123456789012", api=SUBS_API)
    assert other.status_code == 404 and other.json()["error"]["code"] == "SubscriptionNotFound"


def test_list_resource_groups_as_arm_returns_them(arm):
    r = arm.call("GET", rg_path(), api=RG_API)
    assert r.status_code == 200
    groups = {g["name"]: g for g in r.json()["value"]}
    assert sorted(groups) == ["rg-db", "rg-empty", "rg-web"]
    for name, group in groups.items():
        assert set(group) == RG_KEYS
        assert group["id"] == f"/subscriptions/{SUB}/resourceGroups/{name}"
        assert group["type"] == "Microsoft.Resources/resourceGroups"
        assert group["properties"] == {"provisioningState": "Succeeded"}
        assert group["tags"] == {}
    assert (groups["rg-web"]["location"], groups["rg-db"]["location"]) == ("westeurope", "northeurope")


def test_resource_group_tags_from_seed():
    seed = copy.deepcopy(SEED)
    seed["resource_groups"][2]["tags"] = {"owner": "ops", "cost-center": "42"}
    with ArmSim(seed) as sim:
        arm = Arm(sim)
        groups = {g["name"]: g for g in arm.call("GET", rg_path(), api=RG_API).json()["value"]}
        assert groups["rg-empty"]["tags"] == {"owner": "ops", "cost-center": "42"}
        assert arm.call("GET", rg_path("rg-empty"), api=RG_API).json()["tags"] == {"owner": "ops", "cost-center": "42"}


def test_list_resource_groups_pages(sim, arm):
    sim.config(page_size=2)
    first = arm.call("GET", rg_path(), api=RG_API).json()
    assert len(first["value"]) == 2
    assert first["nextLink"].startswith(arm.base + rg_path() + "?")
    assert f"api-version={RG_API}" in first["nextLink"] and "%24skiptoken=2" in first["nextLink"]
    second = arm.call("GET", first["nextLink"], api=None).json()
    assert len(second["value"]) == 1 and "nextLink" not in second
    assert sorted(g["name"] for g in first["value"] + second["value"]) == ["rg-db", "rg-empty", "rg-web"]


def test_get_resource_group(arm):
    listed = {g["name"]: g for g in arm.call("GET", rg_path(), api=RG_API).json()["value"]}
    r = arm.call("GET", rg_path("rg-web"), api=RG_API)
    assert r.status_code == 200 and r.json() == listed["rg-web"]
    # names are case-insensitive, and the SDK's resourceGroups spelling routes the same way
    assert arm.call("GET", rg_path("RG-WEB"), api=RG_API).json() == listed["rg-web"]
    assert arm.call("GET", f"/subscriptions/{SUB}/resourceGroups/rg-web", api=RG_API).json() == listed["rg-web"]


def test_missing_resource_group(arm):
    r = arm.call("GET", rg_path("rg-nope"), api=RG_API)
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "ResourceGroupNotFound", "message": "Resource group 'rg-nope' could not be found."}


def test_head_resource_group(arm):
    present = arm.call("HEAD", rg_path("rg-web"), api=RG_API)
    absent = arm.call("HEAD", rg_path("rg-nope"), api=RG_API)
    assert (present.status_code, absent.status_code) == (204, 404)
    assert present.content == b"" and absent.content == b""


def test_resource_group_writes_are_not_simulated(arm):
    r = arm.call("PUT", rg_path("rg-new"), {"location": "westeurope"}, api=RG_API)
    assert r.status_code == 501 and r.json()["error"]["code"] == "NotImplementedInArmsim"


def test_reads_are_counted_and_logged(sim, arm):
    sim.reset_stats()
    arm.call("GET", "/subscriptions", api=SUBS_API)
    arm.call("GET", rg_path(), api=RG_API)
    arm.call("GET", rg_path("rg-web"), api=RG_API)
    stats = sim.stats()
    assert stats["by_operation"] == {"GET subscriptions": 1, "GET resourcegroups": 2}
    assert stats["reads"] == 3 and stats["writes"] == 0
    assert [(r["path"], r["query"]) for r in sim.requests()] == [
        ("/subscriptions", f"api-version={SUBS_API}"),
        (rg_path(), f"api-version={RG_API}"),
        (rg_path("rg-web"), f"api-version={RG_API}"),
    ]


def test_reads_need_a_token_and_an_api_version(arm):
    assert arm.call("GET", "/subscriptions", api=SUBS_API, token="").status_code == 401
    assert arm.call("GET", rg_path("rg-web"), api=RG_API, token="").status_code == 401
    missing = arm.call("GET", "/subscriptions", api=None)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"


# --- RBAC ---------------------------------------------------------------------------------------

RG_READER_ID = "66666666-6666-6666-6666-666666666666"
SUB_READER_ID = "77777777-7777-7777-7777-777777777777"


@pytest.fixture(scope="module")
def rbac_sim():
    seed = copy.deepcopy(SEED)
    seed["principals"] += [
        {"client_id": RG_READER_ID, "client_secret": "rg-secret", "name": "rg-reader", "actions": ["Microsoft.Resources/subscriptions/resourceGroups/read"]},
        {"client_id": SUB_READER_ID, "client_secret": "sub-secret", "name": "sub-reader", "actions": ["Microsoft.Resources/subscriptions/read"]},
    ]
    with ArmSim(seed) as sim:
        yield sim


def _statuses(arm, token):
    return [
        arm.call("GET", "/subscriptions", api=SUBS_API, token=token).status_code,
        arm.call("GET", f"/subscriptions/{SUB}", api=SUBS_API, token=token).status_code,
        arm.call("GET", rg_path(), api=RG_API, token=token).status_code,
        arm.call("GET", rg_path("rg-web"), api=RG_API, token=token).status_code,
        arm.call("HEAD", rg_path("rg-web"), api=RG_API, token=token).status_code,
    ]


def test_default_owner_and_reader_principals_read(rbac_sim):
    arm = Arm(rbac_sim)
    owner = arm.token(CLIENT_ID).json()["access_token"]
    reader = arm.token(READER_ID, "reader-secret").json()["access_token"]
    assert _statuses(arm, owner) == [200, 200, 200, 200, 204]
    assert _statuses(arm, reader) == [200, 200, 200, 200, 204]


def test_allow_lists_map_to_the_resources_read_actions(rbac_sim):
    arm = Arm(rbac_sim)
    rg_reader = arm.token(RG_READER_ID, "rg-secret").json()["access_token"]
    sub_reader = arm.token(SUB_READER_ID, "sub-secret").json()["access_token"]
    assert _statuses(arm, rg_reader) == [403, 403, 200, 200, 204]
    assert _statuses(arm, sub_reader) == [200, 200, 403, 403, 403]
    refused = arm.call("GET", rg_path(), api=RG_API, token=sub_reader).json()["error"]
    assert refused["code"] == "AuthorizationFailed"
    assert "'Microsoft.Resources/subscriptions/resourceGroups/read'" in refused["message"] and SUB_READER_ID in refused["message"]
    refused = arm.call("GET", "/subscriptions", api=SUBS_API, token=rg_reader).json()["error"]
    assert "'Microsoft.Resources/subscriptions/read'" in refused["message"]


# --- cloud metadata for azure.azcollection ---------------------------------------------------------


def test_metadata_has_what_azure_cli_core_maps_to_a_cloud(sim):
    """azure-cli-core's ``_arm_to_cli_mapper`` (azure.azcollection's ``azure_cloud``) reads these keys
    without a fallback; the rest it reads with ``get``. Endpoints must be armsim's own."""
    base = sim.info["arm_url"]
    meta = requests.get(sim.info["metadata_url"], verify=sim.info["ca_bundle"], timeout=10).json()
    assert meta["name"] == "armsim"
    assert meta["authentication"]["loginEndpoint"] == base + "/"
    assert meta["authentication"]["audiences"][0] == base + "/"
    assert meta["resourceManager"] == base + "/"
    assert isinstance(meta["suffixes"], dict) and meta["suffixes"]["sqlServerHostname"]
    for key in ("activeDirectoryDataLake", "graphAudience", "batch", "gallery", "media", "portal", "sqlManagement", "vmImageAliasDoc"):
        assert meta[key].startswith(base + "/"), key
    # every suffix points at a name that cannot resolve (no traffic can leave the machine)
    assert all(value.endswith(".armsim.local") for value in meta["suffixes"].values())


SUB2 = "00000000-0000-0000-0000-0000000000b2"


def test_extra_subscriptions_share_the_tenant_and_keep_their_own_resources():
    seed = copy.deepcopy(SEED)
    seed["extra_subscriptions"] = [{"subscription_id": SUB2, "subscription_name": "dev", "resource_groups": [{"name": "rg-dev", "location": "northeurope"}]}]
    with ArmSim(seed) as sim:
        arm = Arm(sim)
        listed = arm.call("GET", "/subscriptions", api=SUBS_API).json()["value"]
        assert [(sub["subscriptionId"], sub["displayName"], sub["tenantId"]) for sub in listed] == [(SUB, "armsim", TENANT), (SUB2, "dev", TENANT)]
        dev = arm.call("GET", f"/subscriptions/{SUB2}/resourcegroups", api=RG_API).json()["value"]
        assert [group["id"] for group in dev] == [f"/subscriptions/{SUB2}/resourceGroups/rg-dev"]
        assert arm.call("GET", f"/subscriptions/{SUB2}/resourcegroups/rg-web", api=RG_API).status_code == 404  # rg-web is SUB's
        unknown = arm.call("GET", "/subscriptions/00000000-0000-0000-0000-0000000000ff/resourcegroups", api=RG_API)
        assert unknown.json()["error"]["code"] == "SubscriptionNotFound"
        state = sim.state()
        assert [extra["subscription_id"] for extra in state["extra_subscriptions"]] == [SUB2]


def test_extra_subscriptions_need_unique_ids():
    from armsim.seed import SeedError, build_states

    with pytest.raises(SeedError, match="subscription ids must be unique"):
        build_states(dict(copy.deepcopy(SEED), extra_subscriptions=[{"subscription_id": SUB.upper()}]), 0)
    with pytest.raises(SeedError, match="needs a subscription_id"):
        build_states(dict(copy.deepcopy(SEED), extra_subscriptions=[{"resource_groups": []}]), 0)
