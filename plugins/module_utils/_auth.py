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

AUTH_ARGUMENT_SPEC = {
    "auth_source": {
        "type": "str",
        "default": "auto",
        "choices": list(AUTH_SOURCES),
        "fallback": (env_fallback, ["ANSIBLE_AZURE_AUTH_SOURCE"]),
    },
    "profile": {"type": "str", "fallback": (env_fallback, ["AZURE_PROFILE"])},
    "subscription_id": {"type": "str", "fallback": (env_fallback, ["AZURE_SUBSCRIPTION_ID"])},
    "client_id": {"type": "str", "fallback": (env_fallback, ["AZURE_CLIENT_ID"])},
    # No env_fallback here on purpose: see SECRET_ENVIRONMENT_VARIABLES.
    "secret": {"type": "str", "no_log": True},
    "tenant": {"type": "str", "fallback": (env_fallback, ["AZURE_TENANT", "AZURE_TENANT_ID"])},
    "x509_certificate_path": {
        "type": "path",
        "fallback": (env_fallback, ["AZURE_X509_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PATH"]),
    },
    "cloud_environment": {
        "type": "str",
        "default": "AzureCloud",
        "fallback": (env_fallback, ["AZURE_CLOUD_ENVIRONMENT"]),
    },
    "disable_instance_discovery": {
        "type": "bool",
        "default": False,
        "fallback": (env_fallback, ["AZURE_DISABLE_INSTANCE_DISCOVERY"]),
    },
}

# The secret is read from these variables when the option is unset, instead of through an
# env_fallback: a no_log option's value makes Ansible scan the whole module result for it before
# returning (seconds on a fleet-sized result), and a value that never entered the module's
# parameters cannot leak into its result in the first place.
SECRET_ENVIRONMENT_VARIABLES = ("AZURE_SECRET", "AZURE_CLIENT_SECRET")

# Credential-file keys we read, as azure.azcollection writes them.
CREDENTIAL_FILE_KEYS = ("subscription_id", "client_id", "secret", "tenant", "cloud_environment", "x509_certificate_path")

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
    parser = configparser.ConfigParser()
    parser.read(path)
    section = profile or "default"
    if not parser.has_section(section):
        if profile:
            raise AuthError("profile %r not found in %s (sections: %s)" % (profile, path, ", ".join(parser.sections()) or "none"))
        return {}
    return {key: parser.get(section, key) for key in CREDENTIAL_FILE_KEYS if parser.has_option(section, key)}


def has_service_principal(settings):
    return bool(settings.get("client_id") and settings.get("tenant") and (settings.get("secret") or settings.get("x509_certificate_path")))


def resolve_settings(params, credential_file_reader=read_credential_file):
    """Decide the credential kind and merge the settings it uses.

    ``auto`` follows azure.azcollection: explicit/environment service principal first, then the
    credential file, then the Azure CLI login.
    """
    settings = {key: params.get(key) for key in AUTH_ARGUMENT_SPEC}
    if not settings.get("secret"):
        settings["secret"] = next((os.environ[name] for name in SECRET_ENVIRONMENT_VARIABLES if os.environ.get(name)), None)
    source = settings["auth_source"] or "auto"
    if source == "auto":
        if has_service_principal(settings):
            source = "env"
        else:
            from_file = credential_file_reader(settings.get("profile"))
            source = "credential_file" if has_service_principal(from_file) else "cli"
    if source == "credential_file":
        from_file = credential_file_reader(settings.get("profile"))
        if not has_service_principal(from_file):
            raise AuthError("auth_source=credential_file but the credential file has no client_id, tenant and secret/certificate")
        for key, value in from_file.items():
            if value and (not settings.get(key) or key in ("client_id", "secret", "tenant", "x509_certificate_path")):
                settings[key] = value
    if source == "env" and not has_service_principal(settings):
        missing = [key for key in ("client_id", "tenant") if not settings.get(key)]
        if not (settings.get("secret") or settings.get("x509_certificate_path")):
            missing.append("secret or x509_certificate_path")
        raise AuthError("auth_source=env needs a service principal; missing: %s (options or AZURE_* variables)" % ", ".join(missing))
    settings["auth_source"] = source
    return settings


def build_credential(settings, cloud):
    """Instantiate the azure-identity credential for resolved ``settings``."""
    from azure.identity import AzureCliCredential, CertificateCredential, ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    common = {"authority": cloud.authority}
    if settings.get("disable_instance_discovery"):
        common["disable_instance_discovery"] = True
    source = settings["auth_source"]
    if source in ("env", "credential_file"):
        if settings.get("x509_certificate_path"):
            return CertificateCredential(settings["tenant"], settings["client_id"], settings["x509_certificate_path"], **common)
        return ClientSecretCredential(settings["tenant"], settings["client_id"], settings["secret"], **common)
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
