# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Authentication options shared by every module; names and variables match azure.azcollection.
    DOCUMENTATION = r"""
options:
  auth_source:
    description:
      - Where the credentials come from.
      - V(auto) uses a service principal (or O(ad_user) and O(password)) given by options or
        environment variables, else the credential file, else the Azure CLI login (the
        azure.azcollection order).
      - V(env) uses the service principal, or the user and password, given by options or
        C(AZURE_*) environment variables.
      - V(credential_file) reads the section O(profile) (default C(default)) of C(~/.azure/credentials).
      - V(msi) uses the managed identity of the machine (user-assigned when O(client_id) is set).
        Without O(subscription_id), the one subscription the identity can see is used (and
        named in a warning); when it sees several, the module fails naming them.
      - V(cli) uses the current C(az login).
      - V(default) uses azure-identity's C(DefaultAzureCredential) chain.
      - Can also be set with the E(ANSIBLE_AZURE_AUTH_SOURCE) environment variable.
    type: str
    default: auto
    choices: [auto, env, cli, credential_file, msi, default]
  profile:
    description:
      - Section of C(~/.azure/credentials) to read with O(auth_source=credential_file) or V(auto).
      - Can also be set with the E(AZURE_PROFILE) environment variable.
    type: str
  subscription_id:
    description:
      - The subscription to work in.
      - Can also be set with the E(AZURE_SUBSCRIPTION_ID) environment variable or in the credential file.
      - With O(auth_source=cli) it defaults to the subscription of the current C(az login).
    type: str
  client_id:
    description:
      - Application (client) ID of the service principal, or of a user-assigned managed identity.
      - Can also be set with the E(AZURE_CLIENT_ID) environment variable.
    type: str
  secret:
    description:
      - Client secret of the service principal. Never logged.
      - Can also be set with the E(AZURE_SECRET) or E(AZURE_CLIENT_SECRET) environment variables.
    type: str
  tenant:
    description:
      - Directory (tenant) ID of the service principal.
      - Can also be set with the E(AZURE_TENANT) or E(AZURE_TENANT_ID) environment variables.
    type: str
  x509_certificate_path:
    description:
      - Path to a PEM file holding the service principal's certificate and private key; used
        instead of O(secret).
      - Can also be set with the E(AZURE_X509_CERTIFICATE_PATH) environment variable.
    type: path
  x509_certificate_password:
    description:
      - Password of the private key in O(x509_certificate_path), when it is encrypted. Never logged.
      - Can also be set with the E(AZURE_CLIENT_CERTIFICATE_PASSWORD) environment variable (the
        name azure-identity uses) or in the credential file.
    type: str
    version_added: 0.2.0
  cloud_environment:
    description:
      - The Azure cloud, by name (V(AzureCloud), V(AzureUSGovernment), V(AzureChinaCloud)) or as
        the https URL of an ARM metadata endpoint, such as
        C(https://management.local.azurestack.external/metadata/endpoints?api-version=2019-05-01)
        for Azure Stack Hub.
      - Can also be set with the E(AZURE_CLOUD_ENVIRONMENT) environment variable.
    type: str
    default: AzureCloud
  disable_instance_discovery:
    description:
      - Skip Entra ID instance discovery; required for private authorities such as Azure Stack Hub
        or a local test service.
      - Can also be set with the E(AZURE_DISABLE_INSTANCE_DISCOVERY) environment variable.
    type: bool
    default: false
  ad_user:
    description:
      - User principal name for a user and password sign-in (Entra ID resource owner password
        flow; accounts with multifactor authentication cannot use it). Used with O(password),
        O(tenant) (default C(organizations)) and O(client_id) (default the Azure CLI's public
        client, as in azure.azcollection).
      - Can also be set with the E(AZURE_AD_USER) environment variable, which the AWX/Automation
        Platform "Microsoft Azure Resource Manager" credential injects.
    type: str
    version_added: 0.2.0
  password:
    description:
      - Password of O(ad_user). Never logged.
      - Can also be set with the E(AZURE_PASSWORD) environment variable.
    type: str
    version_added: 0.2.0
  adfs_authority_url:
    description:
      - Sign in at this authority instead of the cloud's, for ADFS (Azure Stack Hub disconnected);
        usually with O(disable_instance_discovery=true).
      - Can also be set with the E(AZURE_ADFS_AUTHORITY_URL) environment variable.
    type: str
    version_added: 0.2.0
  thumbprint:
    description:
      - SHA-1 thumbprint of the certificate in O(x509_certificate_path). When given, the file must
        hold that certificate, or the module fails before signing in.
      - Can also be set with the E(AZURE_THUMBPRINT) environment variable.
    type: str
    version_added: 0.2.0
  cert_validation_mode:
    description:
      - Accepted for compatibility with azure.azcollection. V(validate) is what this collection
        always does; V(ignore) is refused, because TLS verification cannot be turned off. Trust a
        private CA with the E(REQUESTS_CA_BUNDLE) environment variable instead.
      - Can also be set with the E(AZURE_CERT_VALIDATION_MODE) environment variable.
    type: str
    choices: [validate, ignore]
    version_added: 0.2.0
  api_profile:
    description:
      - Accepted for compatibility with azure.azcollection. Only V(latest) is supported, as the
        modules call fixed, generally available API versions.
    type: str
    default: latest
    version_added: 0.2.0
  log_mode:
    description:
      - V(file) appends the Azure SDK's log (requests, answers, retries, sign-in; no bodies,
        C(Authorization) redacted) to O(log_path).
    type: str
    version_added: 0.2.0
  log_path:
    description:
      - The file O(log_mode=file) writes to. Setting it alone also turns the log on.
    type: path
    version_added: 0.2.0
requirements:
  - python >= 3.10
  - azure-core >= 1.31.0
  - azure-mgmt-core >= 1.4.0
  - azure-identity >= 1.19.0
notes:
  - TLS certificates are always verified and there is no option to turn verification off. Trust a
    private CA the standard way, with the E(REQUESTS_CA_BUNDLE) environment variable.
  - The modules talk to Azure from the controller; run them on C(localhost) or delegate them to it.
  - Throttling (HTTP 429) and transient 5xx answers are retried, honouring C(Retry-After).
"""
