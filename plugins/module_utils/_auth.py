# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Credentials and cloud endpoints (the ARM I/O layer built on them is :mod:`_api`).

Option names and environment variables follow azure.azcollection so existing inventories,
credential files and CI variables keep working. Only public azure-identity classes are used, and
TLS is always verified: a private CA is trusted through ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
from urllib.parse import urlparse

from ansible.module_utils.basic import env_fallback

AUTH_SOURCES = ("auto", "env", "cli", "credential_file", "msi", "default")

AUTH_ARGUMENT_SPEC = dict(
    auth_source=dict(
        type="str",
        default="auto",
        choices=list(AUTH_SOURCES),
        fallback=(env_fallback, ["ANSIBLE_AZURE_AUTH_SOURCE"]),
    ),
    profile=dict(type="str", fallback=(env_fallback, ["AZURE_PROFILE"])),
    subscription_id=dict(type="str", fallback=(env_fallback, ["AZURE_SUBSCRIPTION_ID"])),
    client_id=dict(type="str", fallback=(env_fallback, ["AZURE_CLIENT_ID"])),
    # No env_fallback here on purpose: see SECRET_ENVIRONMENT_VARIABLES.
    secret=dict(type="str", no_log=True),
    tenant=dict(type="str", fallback=(env_fallback, ["AZURE_TENANT", "AZURE_TENANT_ID"])),
    x509_certificate_path=dict(
        type="path",
        fallback=(env_fallback, ["AZURE_X509_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PATH"]),
    ),
    # No env_fallback on purpose: see SECRET_ENVIRONMENT_VARIABLES.
    x509_certificate_password=dict(type="str", no_log=True),
    cloud_environment=dict(
        type="str",
        default="AzureCloud",
        fallback=(env_fallback, ["AZURE_CLOUD_ENVIRONMENT"]),
    ),
    disable_instance_discovery=dict(
        type="bool",
        default=False,
        fallback=(env_fallback, ["AZURE_DISABLE_INSTANCE_DISCOVERY"]),
    ),
    # The rest of azure.azcollection's authentication options, so that one module_defaults block
    # or AWX credential serves both collections (same names, same variables).
    ad_user=dict(type="str", fallback=(env_fallback, ["AZURE_AD_USER"])),
    # No env_fallback on purpose: see SECRET_ENVIRONMENT_VARIABLES.
    password=dict(type="str", no_log=True),
    adfs_authority_url=dict(type="str", fallback=(env_fallback, ["AZURE_ADFS_AUTHORITY_URL"])),
    thumbprint=dict(type="str", fallback=(env_fallback, ["AZURE_THUMBPRINT"])),
    cert_validation_mode=dict(type="str", choices=["validate", "ignore"], fallback=(env_fallback, ["AZURE_CERT_VALIDATION_MODE"])),
    api_profile=dict(type="str", default="latest"),
    log_mode=dict(type="str"),
    log_path=dict(type="path"),
)

# The secret and the password are read from these variables when the option is unset, instead of
# through an env_fallback: a no_log option's value makes Ansible scan the whole module result for it
# before returning (seconds on a fleet-sized result), and a value that never entered the module's
# parameters cannot leak into its result in the first place.
SECRET_ENVIRONMENT_VARIABLES = ("AZURE_SECRET", "AZURE_CLIENT_SECRET")
PASSWORD_ENVIRONMENT_VARIABLES = ("AZURE_PASSWORD",)
CERTIFICATE_PASSWORD_ENVIRONMENT_VARIABLES = ("AZURE_CLIENT_CERTIFICATE_PASSWORD",)
SECRET_KEYS = ("secret", "password", "x509_certificate_password")
"""Settings whose values are secrets: never output, and scrubbed from anything that is."""

# Credential-file keys we read, as azure.azcollection writes them.
CREDENTIAL_FILE_KEYS = (
    "subscription_id",
    "client_id",
    "secret",
    "tenant",
    "cloud_environment",
    "x509_certificate_path",
    "x509_certificate_password",
    "thumbprint",
    "ad_user",
    "password",
    "adfs_authority_url",
    "cert_validation_mode",
)
# Keys that describe one identity: taken from the credential file together, over options.
IDENTITY_KEYS = ("client_id", "secret", "tenant", "x509_certificate_path", "x509_certificate_password", "thumbprint", "ad_user", "password")

AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
"""The public client a user/password sign-in uses when no client_id is given (as azure.azcollection)."""

LOG_MODES = ("file",)

NON_SECRET_AUTH_KEYS = (
    "auth_source",
    "profile",
    "client_id",
    "tenant",
    "x509_certificate_path",
    "cloud_environment",
    "disable_instance_discovery",
    "ad_user",
    "adfs_authority_url",
    "thumbprint",
)
"""The settings jit_request records for jit_guard (and the guard reuses) to close with the same
identity: never a secret or password, which the guard takes from its own options/environment."""

KNOWN_CLOUDS = {
    "azurecloud": ("AzureCloud", "https://login.microsoftonline.com", "https://management.azure.com"),
    "azurepubliccloud": ("AzureCloud", "https://login.microsoftonline.com", "https://management.azure.com"),
    "azureusgovernment": ("AzureUSGovernment", "https://login.microsoftonline.us", "https://management.usgovcloudapi.net"),
    "azureusgovernmentcloud": ("AzureUSGovernment", "https://login.microsoftonline.us", "https://management.usgovcloudapi.net"),
    "azurechinacloud": ("AzureChinaCloud", "https://login.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
}


class AuthError(Exception):
    """A credential or cloud setting the user must fix; the message says which."""


class CloudEndpoints:
    """Where to log in and where ARM lives, plus the token audience for ARM."""

    def __init__(self, name, authority, resource_manager, audience=None):
        self.name = name
        self.authority = authority.rstrip("/")
        self.resource_manager = resource_manager.rstrip("/")
        self.audience = (audience or resource_manager).rstrip("/")

    @property
    def credential_scopes(self):
        return [self.audience + "/.default"]


def resolve_cloud(cloud_environment, fetch_json=None):
    """Turn a cloud name or a metadata URL into :class:`CloudEndpoints`.

    A metadata URL (``https://host/metadata/endpoints?api-version=2019-05-01``, as Azure Stack Hub
    publishes) is fetched with TLS verification; ``fetch_json`` is injectable for tests.
    """
    value = (cloud_environment or "AzureCloud").strip()
    if value.lower().startswith("http://"):
        raise AuthError("cloud_environment %r must be an https:// metadata URL; plain http is refused" % value)
    if not value.lower().startswith("https://"):
        known = KNOWN_CLOUDS.get(value.lower())
        if not known:
            raise AuthError(
                "cloud_environment %r is not known: use AzureCloud, AzureUSGovernment, AzureChinaCloud "
                "or an https:// metadata URL such as https://HOST/metadata/endpoints?api-version=2019-05-01" % value
            )
        return CloudEndpoints(*known)
    document = (fetch_json or _fetch_json)(value)
    return cloud_from_metadata(document, value)


def cloud_from_metadata(document, url):
    """Pick the endpoints out of an ARM metadata document (one object, or a list of clouds)."""
    if isinstance(document, list):
        host = urlparse(url).hostname
        matches = [doc for doc in document if urlparse(doc.get("resourceManager", "")).hostname == host]
        if not matches:
            names = ", ".join(sorted(doc.get("name", "?") for doc in document))
            raise AuthError("metadata at %s lists no cloud whose resourceManager is %s (it lists: %s)" % (url, host, names))
        document = matches[0]
    try:
        authentication = document["authentication"]
        login = authentication["loginEndpoint"]
        arm = document["resourceManager"]
    except (KeyError, TypeError) as exc:
        raise AuthError("metadata at %s lacks %s; is it an ARM metadata endpoint?" % (url, exc)) from None
    audiences = authentication.get("audiences") or [arm]
    return CloudEndpoints(document.get("name", "custom"), login, arm, audiences[0])


def _fetch_json(url):
    import requests  # azure-core's transport; honours REQUESTS_CA_BUNDLE

    try:
        response = requests.get(url, timeout=30)
        response.raise_for_status()
        return response.json()
    except requests.exceptions.SSLError as exc:
        raise AuthError(
            "TLS verification failed for cloud metadata %s: %s. Trust its CA with REQUESTS_CA_BUNDLE; verification cannot be turned off" % (url, exc)
        ) from None
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise AuthError("could not read cloud metadata from %s: %s" % (url, exc)) from None


def read_credential_file(profile=None, path=None):
    """Return the ``[profile]`` (default ``[default]``) section of ~/.azure/credentials, or {}."""
    path = path or os.path.join(os.path.expanduser("~"), ".azure", "credentials")
    if not os.path.exists(path):
        if profile:
            raise AuthError("profile %r was requested but %s does not exist" % (profile, path))
        return {}
    # No interpolation: a secret may contain '%'. Parse errors never quote the file's lines.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise AuthError("%s is not a valid credential file (%s)" % (path, type(exc).__name__)) from None
    section = profile or "default"
    if not parser.has_section(section):
        if profile:
            raise AuthError("profile %r not found in %s (sections: %s)" % (profile, path, ", ".join(parser.sections()) or "none"))
        return {}
    return {key: parser.get(section, key, raw=True) for key in CREDENTIAL_FILE_KEYS if parser.has_option(section, key)}


def has_service_principal(settings):
    return bool(settings.get("client_id") and settings.get("tenant") and (settings.get("secret") or settings.get("x509_certificate_path")))


def has_user_password(settings):
    return bool(settings.get("ad_user") and settings.get("password"))


def has_identity(settings):
    """A service principal or a user and password: what env and credential_file sources need."""
    return has_service_principal(settings) or has_user_password(settings)


def _from_environment(names):
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def check_supported(settings):
    """Refuse, with the reason, the azure.azcollection options that would weaken or change what we do."""
    if (settings.get("cert_validation_mode") or "validate").lower() == "ignore":
        raise AuthError(
            "cert_validation_mode=ignore is refused: jitaccess.azure always verifies TLS. To trust a private CA (Azure Stack Hub, a TLS-inspecting"
            " proxy), put its certificate in a PEM bundle and point REQUESTS_CA_BUNDLE at it"
        )
    profile = settings.get("api_profile") or "latest"
    if profile != "latest":
        raise AuthError(
            "api_profile %r is not supported: jitaccess.azure calls fixed, generally available API versions; use api_profile=latest (the default)" % profile
        )
    mode = settings.get("log_mode")
    if mode is not None and mode not in LOG_MODES:
        raise AuthError("log_mode %r is not supported: use log_mode=file with log_path, or omit it" % mode)
    if mode == "file" and not settings.get("log_path"):
        raise AuthError("log_mode=file needs log_path (the file the Azure SDK's HTTP log is appended to)")


def credential_kind(settings):
    """Which credential the resolved settings build: secret, certificate, user, msi, cli or default."""
    source = settings["auth_source"]
    if source in ("env", "credential_file"):
        if has_service_principal(settings):
            return "certificate" if settings.get("x509_certificate_path") and not settings.get("secret") else "secret"
        return "user"
    return source


def resolve_settings(params, credential_file_reader=read_credential_file):
    """Decide the credential kind and merge the settings it uses.

    ``auto`` follows azure.azcollection: a service principal or a user and password given by
    options or environment variables first, then the credential file, then the Azure CLI login.
    The result carries ``auth_source`` (the source used) and ``credential_kind``.
    """
    settings = {key: params.get(key) for key in AUTH_ARGUMENT_SPEC}
    settings["secret"] = settings.get("secret") or _from_environment(SECRET_ENVIRONMENT_VARIABLES)
    settings["password"] = settings.get("password") or _from_environment(PASSWORD_ENVIRONMENT_VARIABLES)
    settings["x509_certificate_password"] = settings.get("x509_certificate_password") or _from_environment(CERTIFICATE_PASSWORD_ENVIRONMENT_VARIABLES)
    source = settings["auth_source"] or "auto"
    if source == "auto":
        if has_identity(settings):
            source = "env"
        else:
            from_file = credential_file_reader(settings.get("profile"))
            source = "credential_file" if has_identity(from_file) else "cli"
    if source == "credential_file":
        from_file = credential_file_reader(settings.get("profile"))
        if not has_identity(from_file):
            raise AuthError(
                "auth_source=credential_file but the credential file has neither a service principal (client_id, tenant and secret or"
                " x509_certificate_path) nor ad_user and password"
            )
        for key, value in from_file.items():
            if value and (not settings.get(key) or key in IDENTITY_KEYS):
                settings[key] = value
    if source == "env" and not has_identity(settings):
        missing = [key for key in ("client_id", "tenant") if not settings.get(key)]
        if not (settings.get("secret") or settings.get("x509_certificate_path")):
            missing.append("secret or x509_certificate_path")
        raise AuthError("auth_source=env needs a service principal (missing: %s) or ad_user and password (options or AZURE_* variables)" % ", ".join(missing))
    settings["auth_source"] = source
    check_supported(settings)
    settings["credential_kind"] = credential_kind(settings)
    return settings


def known_secrets(params, credential_file_reader=read_credential_file):
    """Every secret value a run may hold, from every source (options, environment variables, the
    credential file's profile), longest first: what output is scrubbed of. Never raises."""
    values = [params.get(key) for key in SECRET_KEYS]
    for names in (SECRET_ENVIRONMENT_VARIABLES, PASSWORD_ENVIRONMENT_VARIABLES, CERTIFICATE_PASSWORD_ENVIRONMENT_VARIABLES):
        values.extend(os.environ.get(name) for name in names)
    try:
        from_file = credential_file_reader(params.get("profile"))
    except Exception:  # noqa: BLE001 - a broken file holds no secret we could use; resolve_settings reports it
        from_file = {}
    values.extend(from_file.get(key) for key in SECRET_KEYS)
    return sorted({value for value in values if isinstance(value, str) and value}, key=lambda value: (-len(value), value))


def sign_in_hint(settings, cloud):
    """The likely cause of a failed sign-in that the settings already show, or None."""
    authority = settings.get("adfs_authority_url") or cloud.authority
    public = {urlparse(known[1]).hostname for known in KNOWN_CLOUDS.values()}
    discovers = settings.get("credential_kind") in ("secret", "certificate", "user") and not settings.get("disable_instance_discovery")
    if discovers and urlparse(authority).hostname not in public:
        return (
            "the authority %s is not a public Azure cloud, so Entra ID instance discovery cannot validate it: set disable_instance_discovery: true"
            " (or AZURE_DISABLE_INSTANCE_DISCOVERY=true) for Azure Stack Hub, ADFS and other private authorities" % authority
        )
    return None


def certificate_thumbprint(path):
    """SHA-1 thumbprint (upper-case hex) of the first certificate in a PEM file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        with open(path, "rb") as stream:
            data = stream.read()
        start = data.index(b"-----BEGIN CERTIFICATE-----")
        certificate = x509.load_pem_x509_certificate(data[start:])
    except (OSError, ValueError) as exc:
        raise AuthError("x509_certificate_path %s: no readable PEM certificate (%s)" % (path, type(exc).__name__)) from None
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - a thumbprint is SHA-1 by definition


def check_thumbprint(settings):
    """When ``thumbprint`` is given, the certificate file must be the one it names."""
    expected = settings.get("thumbprint")
    if not expected or not settings.get("x509_certificate_path"):
        return
    wanted = expected.replace(":", "").replace(" ", "").upper()
    actual = certificate_thumbprint(settings["x509_certificate_path"])
    if wanted != actual:
        raise AuthError("thumbprint %s does not match the certificate in %s (its thumbprint is %s)" % (expected, settings["x509_certificate_path"], actual))


def build_credential(settings, cloud):
    """Instantiate the azure-identity credential for resolved ``settings``."""
    from azure.identity import AzureCliCredential, CertificateCredential, ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    # ADFS (Azure Stack Hub disconnected) signs in at its own authority, as azure.azcollection does.
    common = {"authority": (settings.get("adfs_authority_url") or cloud.authority).rstrip("/")}
    if settings.get("disable_instance_discovery"):
        common["disable_instance_discovery"] = True
    kind = settings.get("credential_kind") or credential_kind(settings)
    if kind == "certificate":
        check_thumbprint(settings)
        if settings.get("x509_certificate_password"):
            common["password"] = settings["x509_certificate_password"]
        return CertificateCredential(settings["tenant"], settings["client_id"], settings["x509_certificate_path"], **common)
    if kind == "secret":
        return ClientSecretCredential(settings["tenant"], settings["client_id"], settings["secret"], **common)
    if kind == "user":
        from azure.identity import UsernamePasswordCredential

        return UsernamePasswordCredential(
            settings.get("client_id") or AZURE_CLI_CLIENT_ID,
            settings["ad_user"],
            settings["password"],
            tenant_id=settings.get("tenant") or "organizations",
            **common,
        )
    source = settings["auth_source"]
    if source == "msi":
        return ManagedIdentityCredential(client_id=settings.get("client_id")) if settings.get("client_id") else ManagedIdentityCredential()
    if source == "cli":
        return AzureCliCredential(tenant_id=settings.get("tenant") or "")
    return DefaultAzureCredential(authority=cloud.authority)


def cli_subscription_id():
    """Subscription of the current ``az login`` (only asked when auth_source=cli and none was given)."""
    try:
        out = subprocess.run(["az", "account", "show", "--output", "json"], capture_output=True, text=True, timeout=30, check=True).stdout
        return json.loads(out)["id"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None
