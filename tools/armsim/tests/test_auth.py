"""Entra ID token endpoint, OpenID discovery, cloud metadata, and ARM's bearer-token checks."""

import base64
import json
import os
import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from simtest import CLIENT_ID, OTHER_ID, OTHER_TENANT, PASSWORD, READER_ID, SECRET, SUB, TENANT, USERNAME, Arm

from armsim.testing import ArmSim


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_openid_configuration(arm):
    r = arm.session.get(f"{arm.base}/{TENANT}/v2.0/.well-known/openid-configuration", verify=arm.sim.info["ca_bundle"])
    assert r.status_code == 200
    cfg = r.json()
    assert cfg["token_endpoint"] == f"{arm.base}/{TENANT}/oauth2/v2.0/token"
    assert cfg["issuer"] == f"{arm.base}/{TENANT}/v2.0"
    for key in ("authorization_endpoint", "jwks_uri", "device_authorization_endpoint", "end_session_endpoint"):
        assert cfg[key].startswith(arm.base)


def test_openid_configuration_unknown_tenant(arm):
    r = arm.session.get(f"{arm.base}/not-a-tenant/v2.0/.well-known/openid-configuration", verify=arm.sim.info["ca_bundle"])
    assert r.status_code == 400
    assert r.json()["error_codes"] == [90002]


def test_token_claims(arm):
    r = arm.token()
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 3000
    claims = _claims(body["access_token"])
    assert claims["aud"] == arm.base
    assert claims["tid"] == TENANT and claims["appid"] == CLIENT_ID and claims["idtyp"] == "app"
    assert claims["oid"] and claims["exp"] > time.time()
    # like a real app-only token: the service principal is named by ids only
    assert not {"name", "upn", "unique_name", "app_displayname", "preferred_username"} & set(claims)


@pytest.mark.parametrize(
    ("client_id", "secret", "tenant", "status", "code", "error"),
    [
        (CLIENT_ID, "wrong", TENANT, 401, 7000215, "invalid_client"),
        ("99999999-9999-9999-9999-999999999999", SECRET, TENANT, 400, 700016, "unauthorized_client"),
        (CLIENT_ID, SECRET, "12345678-0000-0000-0000-000000000000", 400, 90002, "invalid_request"),
        (OTHER_ID, "other-secret", TENANT, 400, 700016, "unauthorized_client"),  # a client of another tenant
    ],
)
def test_token_errors(arm, client_id, secret, tenant, status, code, error):  # noqa: PLR0917 - parametrized
    r = arm.token(client_id, secret, tenant)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    for key in ("trace_id", "correlation_id", "timestamp"):
        assert body[key]


def test_token_unknown_resource(arm):
    r = arm.token(scope="https://vault.example.invalid/.default")
    assert r.status_code == 400 and r.json()["error_codes"] == [500011]


def test_sdk_wrong_secret_raises(sim):
    cred = sim.credential(secret="wrong")
    with pytest.raises(ClientAuthenticationError) as exc:
        cred.get_token(sim.info["arm_url"] + "/.default")
    assert "AADSTS7000215" in str(exc.value)


def test_arm_missing_token(arm):
    r = arm.call("GET", f"/subscriptions/{SUB}/resourcegroups", token="")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AuthenticationFailed"
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert r.headers["x-ms-request-id"]


def test_arm_invalid_token(arm):
    r = arm.call("GET", f"/subscriptions/{SUB}/resourcegroups", token="not.a.token")
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in r.headers
    tampered = arm.bearer()[:-4] + "AAAA"
    assert arm.call("GET", f"/subscriptions/{SUB}/resourcegroups", token=tampered).status_code == 401


def test_arm_wrong_audience(arm):
    token = arm.token(scope="https://management.azure.com/.default").json()["access_token"]
    r = arm.call("GET", f"/subscriptions/{SUB}/resourcegroups", token=token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"


def test_arm_token_of_another_tenant(arm):
    token = arm.token(OTHER_ID, "other-secret", OTHER_TENANT).json()["access_token"]
    r = arm.call("GET", f"/subscriptions/{SUB}/resourcegroups", token=token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"


def test_arm_unknown_subscription(arm):
    r = arm.call("GET", "/subscriptions/12345678-1234-1234-1234-123456789012/resourcegroups")
    assert r.status_code == 404 and r.json()["error"]["code"] == "SubscriptionNotFound"


def test_arm_missing_api_version(arm):
    r = arm.call("GET", f"/subscriptions/{SUB}/resourcegroups", api=None)
    assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"


def test_reader_cannot_write(arm, sim):
    token = arm.token(READER_ID, "reader-secret").json()["access_token"]
    assert arm.call("GET", f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups", token=token).status_code == 200
    r = arm.call(
        "DELETE", f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web/securityRules/AllowHttps", token=token
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
    assert "Microsoft.Network/networkSecurityGroups/securityRules/delete" in r.json()["error"]["message"]


def test_expired_token_is_rejected(tmp_path):
    from simtest import SEED

    with ArmSim(SEED, extra_args=("--token-lifetime", "1")) as short:
        arm = Arm(short)
        token = arm.token().json()["access_token"]
        assert arm.call("GET", f"/subscriptions/{SUB}", token=token).status_code == 200
        # tokens live on real time (the SDK caches them by it): poll until it has expired
        deadline = time.monotonic() + 30
        while (r := arm.call("GET", f"/subscriptions/{SUB}", token=token)).status_code == 200:
            assert time.monotonic() < deadline, "a 1-second token was still accepted 30 s later"
            time.sleep(0.1)
        assert r.status_code == 401 and r.json()["error"]["code"] == "ExpiredAuthenticationToken"


def test_sdk_client_surfaces_401(sim):
    """A valid token of the wrong tenant: ARM's 401 reaches the caller as an SDK exception."""
    cred = sim.credential(OTHER_ID, "other-secret", OTHER_TENANT)
    client = ComputeManagementClient(cred, SUB, **sim.client_kwargs())
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as exc:
        list(client.virtual_machines.list_all())
    assert "InvalidAuthenticationTokenTenant" in str(exc.value)


def test_metadata_endpoint(arm):
    r = requests.get(arm.sim.info["metadata_url"], verify=arm.sim.info["ca_bundle"])
    assert r.status_code == 200
    meta = r.json()
    assert isinstance(meta, dict)
    assert meta["resourceManager"].rstrip("/") == arm.base
    assert meta["authentication"]["loginEndpoint"].rstrip("/") == arm.base
    assert arm.base + "/" in meta["authentication"]["audiences"] or arm.base in meta["authentication"]["audiences"]
    assert meta["authentication"]["identityProvider"] == "AAD"
    assert meta["name"] and isinstance(meta["suffixes"], dict)
    legacy = requests.get(f"{arm.base}/metadata/endpoints?api-version=2015-01-01", verify=arm.sim.info["ca_bundle"]).json()
    assert legacy["authentication"]["loginEndpoint"].rstrip("/") == arm.base and "graphEndpoint" in legacy


def test_token_and_metadata_not_counted(sim, arm):
    sim.reset_stats()
    arm.token()
    requests.get(sim.info["metadata_url"], verify=sim.info["ca_bundle"])
    stats = sim.stats()
    assert stats["requests"] == 0 and stats["token_requests"] == 1


def test_certificate_credential():
    from simtest import SEED

    seed = {**SEED, "principals": [*SEED["principals"], {"client_id": "44444444-4444-4444-4444-444444444444", "certificate": "generate", "name": "cert-app"}]}
    with ArmSim(seed) as sim:
        cert_id = "44444444-4444-4444-4444-444444444444"
        assert sim.info["client_id"] == CLIENT_ID and os.path.exists(sim.info["certificates"][cert_id])
        _, _, _, compute = sim.sdk_clients(credential=sim.certificate_credential(cert_id))
        assert len(list(compute.virtual_machines.list_all())) == 6
        arm = Arm(sim)
        assert arm.token(cert_id, "a-secret").status_code == 401  # no secret registered
        # a certificate the application does not have
        other = sim.info["certificates"][cert_id] + ".other.pem"
        from armsim import certs

        certs.generate(other, "intruder")
        from azure.identity import CertificateCredential

        bad = CertificateCredential(
            TENANT, cert_id, certificate_path=other, authority=sim.info["login_url"], disable_instance_discovery=True, connection_verify=sim.info["ca_bundle"]
        )
        with pytest.raises(ClientAuthenticationError) as exc:
            bad.get_token(sim.info["arm_url"] + "/.default")
        assert "AADSTS700027" in str(exc.value)
        secret_app = sim.credential()  # principals with secrets still work
        assert secret_app.get_token(sim.info["arm_url"] + "/.default").token


def test_design_recipe_with_env_ca_and_metadata(sim, monkeypatch):
    """The recipe of DESIGN.md: REQUESTS_CA_BUNDLE only, endpoints taken from the metadata URL."""
    from azure.identity import ClientSecretCredential
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.security import SecurityCenter

    for key, value in sim.env().items():
        monkeypatch.setenv(key, value)
    meta = requests.get(sim.info["metadata_url"]).json()  # verified through REQUESTS_CA_BUNDLE
    arm_url = meta["resourceManager"].rstrip("/")
    cred = ClientSecretCredential(
        os.environ["AZURE_TENANT"],
        os.environ["AZURE_CLIENT_ID"],
        os.environ["AZURE_SECRET"],
        authority=meta["authentication"]["loginEndpoint"],
        disable_instance_discovery=True,
    )
    kwargs = {"base_url": arm_url, "credential_scopes": [meta["authentication"]["audiences"][0].rstrip("/") + "/.default"]}
    sub = os.environ["AZURE_SUBSCRIPTION_ID"]
    assert len(list(NetworkManagementClient(cred, sub, **kwargs).network_security_groups.list_all())) == 5
    assert list(SecurityCenter(cred, sub, **kwargs).jit_network_access_policies.list()) == []
    assert len(list(ComputeManagementClient(cred, sub, **kwargs).virtual_machines.list_all())) == 6


def _password_token(arm, username=USERNAME, password=PASSWORD, tenant="organizations"):
    data = {"grant_type": "password", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "username": username, "password": password}
    data["scope"] = f"{arm.base}/.default offline_access openid profile"
    return arm.session.post(f"{arm.base}/{tenant}/oauth2/v2.0/token", data=data, verify=arm.sim.info["ca_bundle"])


def test_a_user_signs_in_with_a_password_and_acts_as_themselves(arm):
    realm = arm.session.get(f"{arm.base}/common/userrealm/{USERNAME}?api-version=1.0", verify=arm.sim.info["ca_bundle"])
    assert realm.json()["account_type"] == "Managed"
    body = _password_token(arm).json()
    claims = _claims(body["access_token"])
    assert (claims["idtyp"], claims["upn"], claims["name"], claims["tid"], claims["scp"]) == ("user", USERNAME, "Ops Engineer", TENANT, "user_impersonation")
    assert claims["appid"] == "04b07795-8ddb-461a-bbee-02f9e1bf7b46" and claims["oid"] != CLIENT_ID
    assert _claims(body["id_token"])["preferred_username"] == USERNAME and body["client_info"]
    listed = arm.session.get(
        f"{arm.base}/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01",
        headers={"Authorization": "Bearer " + body["access_token"]},
        verify=arm.sim.info["ca_bundle"],
    )
    assert listed.status_code == 200
    assert _password_token(arm, tenant="adfs").status_code == 200  # ADFS authority (Azure Stack Hub)


@pytest.mark.parametrize(
    ("username", "password", "tenant", "code"),
    [
        (USERNAME, "wrong", "organizations", 50126),
        ("nobody@contoso.example", PASSWORD, "organizations", 50034),
        (USERNAME, PASSWORD, OTHER_TENANT, 50034),
        (CLIENT_ID, SECRET, "organizations", 50034),  # an application cannot use the password grant
    ],
)
def test_password_grant_errors(arm, username, password, tenant, code):
    response = _password_token(arm, username, password, tenant)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant" and response.json()["error_codes"] == [code]
