"""Auth settings resolution, cloud endpoints and credential construction (no network)."""

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _auth

SP = {"client_id": "app", "secret": "s3cret", "tenant": "t1", "subscription_id": "sub"}


def params(**overrides):
    base = {key: None for key in _auth.AUTH_ARGUMENT_SPEC}
    base.update(auth_source="auto", cloud_environment="AzureCloud", disable_instance_discovery=False)
    base.update(overrides)
    return base


def no_file(profile=None):
    return {}


@pytest.mark.parametrize(
    ("name", "authority", "arm"),
    [
        ("AzureCloud", "https://login.microsoftonline.com", "https://management.azure.com"),
        ("azureusgovernment", "https://login.microsoftonline.us", "https://management.usgovcloudapi.net"),
        ("AzureChinaCloud", "https://login.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
        (None, "https://login.microsoftonline.com", "https://management.azure.com"),
    ],
)
def test_known_clouds(name, authority, arm):
    cloud = _auth.resolve_cloud(name)
    assert (cloud.authority, cloud.resource_manager) == (authority, arm)
    assert cloud.credential_scopes == [arm + "/.default"]


def test_unknown_cloud_names_the_value_and_choices():
    with pytest.raises(_auth.AuthError, match=r"'Mars'.*AzureCloud, AzureUSGovernment, AzureChinaCloud"):
        _auth.resolve_cloud("Mars")


def test_plain_http_metadata_is_refused():
    with pytest.raises(_auth.AuthError, match="plain http is refused"):
        _auth.resolve_cloud("http://127.0.0.1/metadata/endpoints")


def test_metadata_url_single_object():
    doc = {
        "name": "AzureStack",
        "resourceManager": "https://127.0.0.1:8443/",
        "authentication": {"loginEndpoint": "https://127.0.0.1:8443/", "audiences": ["https://arm.local/"]},
    }
    cloud = _auth.resolve_cloud("https://127.0.0.1:8443/metadata/endpoints?api-version=2019-05-01", fetch_json=lambda url: doc)
    assert cloud.name == "AzureStack"
    assert cloud.authority == "https://127.0.0.1:8443"
    assert cloud.resource_manager == "https://127.0.0.1:8443"
    assert cloud.credential_scopes == ["https://arm.local/.default"]


def test_metadata_url_list_picks_matching_host():
    docs = [
        {"name": "AzureCloud", "resourceManager": "https://management.azure.com/", "authentication": {"loginEndpoint": "https://login.microsoftonline.com"}},
        {"name": "Other", "resourceManager": "https://arm.example/", "authentication": {"loginEndpoint": "https://login.example"}},
    ]
    cloud = _auth.cloud_from_metadata(docs, "https://arm.example/metadata/endpoints")
    assert cloud.name == "Other"
    assert cloud.credential_scopes == ["https://arm.example/.default"]
    with pytest.raises(_auth.AuthError, match="lists no cloud whose resourceManager is nowhere.example"):
        _auth.cloud_from_metadata(docs, "https://nowhere.example/metadata")


def test_metadata_without_endpoints_is_a_clear_error():
    with pytest.raises(_auth.AuthError, match="lacks"):
        _auth.cloud_from_metadata({"name": "x"}, "https://h/metadata")


def test_auto_prefers_service_principal_then_file_then_cli():
    assert _auth.resolve_settings(params(**SP), no_file)["auth_source"] == "env"
    from_file = _auth.resolve_settings(params(), lambda profile: dict(SP, secret="filesecret"))
    assert from_file["auth_source"] == "credential_file"
    assert from_file["secret"] == "filesecret"
    assert _auth.resolve_settings(params(), no_file)["auth_source"] == "cli"


def test_env_source_names_what_is_missing():
    with pytest.raises(_auth.AuthError, match="missing: tenant, secret or x509_certificate_path"):
        _auth.resolve_settings(params(auth_source="env", client_id="app"), no_file)


def test_credential_file_source_requires_a_principal():
    with pytest.raises(_auth.AuthError, match="credential file has no client_id"):
        _auth.resolve_settings(params(auth_source="credential_file"), no_file)


def test_credential_file_keeps_explicit_subscription(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[default]\nsubscription_id = filesub\nclient_id = app\nsecret = x\ntenant = t\n[ci]\nclient_id = ci\n")
    assert _auth.read_credential_file(path=str(path))["subscription_id"] == "filesub"
    assert _auth.read_credential_file("ci", path=str(path)) == {"client_id": "ci"}
    with pytest.raises(_auth.AuthError, match="profile 'nope' not found"):
        _auth.read_credential_file("nope", path=str(path))
    with pytest.raises(_auth.AuthError, match="does not exist"):
        _auth.read_credential_file("ci", path=str(tmp_path / "missing"))
    assert _auth.read_credential_file(path=str(tmp_path / "missing")) == {}
    settings = _auth.resolve_settings(params(auth_source="credential_file", subscription_id="cli-sub"), lambda p: _auth.read_credential_file(p, str(path)))
    assert settings["subscription_id"] == "cli-sub"
    assert settings["client_id"] == "app"


def test_secret_is_no_log_and_env_fallbacks_match_azcollection():
    spec = _auth.AUTH_ARGUMENT_SPEC
    assert spec["secret"]["no_log"] is True
    assert "fallback" not in spec["secret"]  # read by resolve_settings, never a module parameter
    assert _auth.SECRET_ENVIRONMENT_VARIABLES == ("AZURE_SECRET", "AZURE_CLIENT_SECRET")
    assert spec["tenant"]["fallback"][1] == ["AZURE_TENANT", "AZURE_TENANT_ID"]
    assert spec["auth_source"]["fallback"][1] == ["ANSIBLE_AZURE_AUTH_SOURCE"]
    assert not any("verify" in key or "validation" in key for key in spec)


def test_build_credential_kinds(tmp_path):
    cloud = _auth.CloudEndpoints("x", "https://127.0.0.1:1", "https://127.0.0.1:1")
    settings = dict(params(**SP), auth_source="env", disable_instance_discovery=True)
    cred = _auth.build_credential(settings, cloud)
    assert type(cred).__name__ == "ClientSecretCredential"
    assert type(_auth.build_credential(dict(settings, auth_source="cli"), cloud)).__name__ == "AzureCliCredential"
    assert type(_auth.build_credential(dict(settings, auth_source="msi"), cloud)).__name__ == "ManagedIdentityCredential"
    assert type(_auth.build_credential(dict(settings, auth_source="msi", client_id=None), cloud)).__name__ == "ManagedIdentityCredential"
    assert type(_auth.build_credential(dict(settings, auth_source="default"), cloud)).__name__ == "DefaultAzureCredential"


def test_secret_from_environment_when_the_option_is_unset(monkeypatch):
    monkeypatch.delenv("AZURE_SECRET", raising=False)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "from-env")
    settings = _auth.resolve_settings(params(client_id="app", tenant="t1"), no_file)
    assert (settings["auth_source"], settings["secret"]) == ("env", "from-env")
    monkeypatch.setenv("AZURE_SECRET", "preferred")
    assert _auth.resolve_settings(params(client_id="app", tenant="t1"), no_file)["secret"] == "preferred"
    assert _auth.resolve_settings(params(client_id="app", tenant="t1", secret="option"), no_file)["secret"] == "option"
