"""Auth settings resolution, cloud endpoints and credential construction (no network)."""

import pytest
import trustme

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
    with pytest.raises(_auth.AuthError, match="credential file has neither a service principal"):
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
    # TLS verification cannot be turned off: the only option about it refuses "ignore" (below).
    assert not any("verify" in key for key in spec)


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


# azure.azcollection 3.12.0's AZURE_CREDENTIAL_ENV_MAPPING (module_utils/azure_rm_common.py).
AZCOLLECTION_ENV = {
    "profile": "AZURE_PROFILE",
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "client_id": "AZURE_CLIENT_ID",
    "secret": "AZURE_SECRET",
    "tenant": "AZURE_TENANT",
    "ad_user": "AZURE_AD_USER",
    "password": "AZURE_PASSWORD",
    "cloud_environment": "AZURE_CLOUD_ENVIRONMENT",
    "cert_validation_mode": "AZURE_CERT_VALIDATION_MODE",
    "adfs_authority_url": "AZURE_ADFS_AUTHORITY_URL",
    "x509_certificate_path": "AZURE_X509_CERTIFICATE_PATH",
    "thumbprint": "AZURE_THUMBPRINT",
    "disable_instance_discovery": "AZURE_DISABLE_INSTANCE_DISCOVERY",
}
AZCOLLECTION_OPTIONS = set(AZCOLLECTION_ENV) | {"auth_source", "api_profile", "log_mode", "log_path"}


def test_every_azcollection_option_and_variable_is_accepted(monkeypatch):
    spec = _auth.AUTH_ARGUMENT_SPEC
    assert set(spec) >= AZCOLLECTION_OPTIONS
    for option, variable in AZCOLLECTION_ENV.items():
        if option in ("secret", "password"):  # read by resolve_settings from the environment
            assert variable in _auth.SECRET_ENVIRONMENT_VARIABLES + _auth.PASSWORD_ENVIRONMENT_VARIABLES
            assert spec[option]["no_log"] is True and "fallback" not in spec[option]
        else:
            assert variable in spec[option]["fallback"][1], option
    assert spec["cert_validation_mode"]["choices"] == ["validate", "ignore"]  # the same values; ignore is refused below
    assert spec["api_profile"]["default"] == "latest"


def test_user_and_password_from_the_environment_as_awx_injects_them(monkeypatch):
    for name in _auth.SECRET_ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_PASSWORD", "pa%ss")
    settings = _auth.resolve_settings(params(ad_user="ops@example.com", tenant="t1"), no_file)
    assert (settings["auth_source"], settings["credential_kind"], settings["password"]) == ("env", "user", "pa%ss")
    cloud = _auth.CloudEndpoints("x", "https://127.0.0.1:1", "https://127.0.0.1:1")
    credential = _auth.build_credential(dict(settings, disable_instance_discovery=True), cloud)
    assert type(credential).__name__ == "UsernamePasswordCredential"
    assert credential._client_id == _auth.AZURE_CLI_CLIENT_ID  # azure.azcollection's default public client
    # a service principal wins over a user when both are complete
    both = _auth.resolve_settings(params(ad_user="ops@example.com", client_id="app", tenant="t1", secret="s"), no_file)
    assert both["credential_kind"] == "secret"
    # without any identity, auto falls back to the CLI (and env names both ways in)
    monkeypatch.delenv("AZURE_PASSWORD")
    assert _auth.resolve_settings(params(ad_user="ops@example.com"), no_file)["credential_kind"] == "cli"
    with pytest.raises(_auth.AuthError, match="or ad_user and password"):
        _auth.resolve_settings(params(auth_source="env", ad_user="ops@example.com"), no_file)


def test_adfs_authority_replaces_the_cloud_authority():
    cloud = _auth.CloudEndpoints("x", "https://login.example", "https://arm.example")
    settings = _auth.resolve_settings(params(**SP, adfs_authority_url="https://adfs.example/adfs/"), no_file)
    credential = _auth.build_credential(dict(settings, disable_instance_discovery=True), cloud)
    assert credential._authority == "https://adfs.example/adfs"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cert_validation_mode": "ignore"}, "cert_validation_mode=ignore is refused.*REQUESTS_CA_BUNDLE"),
        ({"cert_validation_mode": "IGNORE"}, "cert_validation_mode=ignore is refused"),
        ({"api_profile": "2019-03-01-hybrid"}, "api_profile '2019-03-01-hybrid' is not supported.*latest"),
        ({"log_mode": "stderr"}, "log_mode 'stderr' is not supported"),
        ({"log_mode": "file"}, "log_mode=file needs log_path"),
    ],
)
def test_options_that_would_weaken_or_change_behaviour_are_refused(overrides, message):
    with pytest.raises(_auth.AuthError, match=message):
        _auth.resolve_settings(params(**SP, **overrides), no_file)


def test_accepted_azcollection_values(tmp_path):
    settings = _auth.resolve_settings(
        params(**SP, cert_validation_mode="validate", api_profile="latest", log_mode="file", log_path=str(tmp_path / "l")), no_file
    )
    assert settings["credential_kind"] == "secret"


def test_credential_file_values_are_read_raw(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[default]\nsubscription_id = s\nclient_id = app\nsecret = a%b%(c)s%%\ntenant = t\ncert_validation_mode = ignore\n")
    assert _auth.read_credential_file(path=str(path))["secret"] == "a%b%(c)s%%"
    with pytest.raises(_auth.AuthError, match="cert_validation_mode=ignore is refused"):
        _auth.resolve_settings(params(auth_source="credential_file"), lambda profile: _auth.read_credential_file(profile, str(path)))
    path.write_text("[default\nsecret = hunter2\n")
    with pytest.raises(_auth.AuthError) as caught:
        _auth.read_credential_file(path=str(path))
    assert "hunter2" not in str(caught.value) and "not a valid credential file" in str(caught.value)


def test_thumbprint_must_match_the_certificate(tmp_path):
    pem = tmp_path / "sp.pem"
    issued = trustme.CA().issue_cert("sp.example")
    pem.write_bytes(issued.private_key_pem.bytes() + issued.cert_chain_pems[0].bytes())
    actual = _auth.certificate_thumbprint(str(pem))
    assert len(actual) == 40
    settings = dict(params(client_id="app", tenant="t", x509_certificate_path=str(pem)), auth_source="env")
    _auth.check_thumbprint(dict(settings, thumbprint=":".join(actual[i : i + 2] for i in range(0, 40, 2)).lower()))
    with pytest.raises(_auth.AuthError, match=r"thumbprint 00FF does not match the certificate in .*\(its thumbprint is " + actual):
        _auth.check_thumbprint(dict(settings, thumbprint="00FF"))
    with pytest.raises(_auth.AuthError, match="no readable PEM certificate"):
        _auth.certificate_thumbprint(str(tmp_path / "missing.pem"))


def test_sign_in_hint_names_instance_discovery_for_private_authorities():
    private = _auth.CloudEndpoints("stack", "https://login.stack.local", "https://arm.stack.local")
    public = _auth.resolve_cloud("AzureCloud")
    settings = _auth.resolve_settings(params(**SP), no_file)
    assert "disable_instance_discovery: true" in _auth.sign_in_hint(settings, private)
    assert _auth.sign_in_hint(dict(settings, disable_instance_discovery=True), private) is None
    assert _auth.sign_in_hint(settings, public) is None
    assert "adfs.example" in _auth.sign_in_hint(dict(settings, adfs_authority_url="https://adfs.example/adfs"), public)
    assert _auth.sign_in_hint(dict(settings, credential_kind="cli"), private) is None


def test_known_secrets_come_from_every_source_longest_first(monkeypatch):
    monkeypatch.setenv("AZURE_SECRET", "env-secret-%s")
    monkeypatch.setenv("AZURE_PASSWORD", "pw")
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "cert-%(pw)s")
    monkeypatch.delenv("AZURE_CLIENT_SECRET", raising=False)

    def reader(profile):
        assert profile == "ops"
        return {"secret": "file-secret-$HOME", "client_id": "not a secret"}

    found = _auth.known_secrets({"secret": "option-secret", "password": None, "profile": "ops"}, credential_file_reader=reader)
    assert found == ["file-secret-$HOME", "env-secret-%s", "option-secret", "cert-%(pw)s", "pw"]

    def broken(profile):
        raise _auth.AuthError("broken file")

    assert "option-secret" in _auth.known_secrets({"secret": "option-secret"}, credential_file_reader=broken)
