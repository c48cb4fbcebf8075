"""Entra ID (token endpoint + OpenID discovery), ARM bearer-token validation, cloud metadata.

Tokens are JWTs signed with HS256 and a per-process key (so ARM can check them without state).
Token lifetimes use real time, not the simulated clock, so /clock/advance never expires the
credential a client has cached.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from armsim import certs
from armsim.arm import ArmError
from armsim.model import Principal, State

PUBLIC_ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Auth:
    def __init__(self, base_url: str, token_lifetime: int = 3599) -> None:
        self.base_url = base_url  # https://127.0.0.1:PORT (login and ARM share the host)
        self.token_lifetime = token_lifetime
        self._key = os.urandom(32)

    # --- Entra ID ---------------------------------------------------------------------------
    @property
    def audiences(self) -> set[str]:
        return {self.base_url, self.base_url + "/"}

    def openid_configuration(self, tenant: str, v2: bool = True) -> dict:
        base = f"{self.base_url}/{tenant}"
        suffix = "/v2.0" if v2 else ""
        return {
            "token_endpoint": f"{base}/oauth2{suffix}/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery{suffix}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}{suffix}" if v2 else f"{base}/",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2{suffix}/authorize",
            "device_authorization_endpoint": f"{base}/oauth2{suffix}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2{suffix}/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "armsim.local",
            "cloud_graph_host_name": "graph.armsim.local",
            "msgraph_host": "graph.armsim.local",
        }

    def aad_error(self, status: int, error: str, code: int, description: str) -> tuple[int, dict]:
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return status, {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"{self.base_url}/error?code={code}",
        }

    def token(self, state: State, tenant: str, form: dict[str, str], v2: bool = True) -> tuple[int, dict]:
        """Client-credentials (or, for a user, password) grant. Returns (status, JSON body)."""
        if form.get("grant_type") == "password":
            return self.password_token(state, tenant, form, v2)
        if tenant.lower() not in state.tenants:
            return self.aad_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. "
                "Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
            )
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            return self.aad_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")
        client_id = form.get("client_id", "")
        if not client_id:
            return self.aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        principal = state.principals.get(client_id.lower())
        if principal is None or principal.tenant_id.lower() != tenant.lower():
            return self.aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request "
                "to the wrong tenant.",
            )
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is None and assertion is None:
            return self.aad_error(
                401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."
            )
        if assertion is not None:
            if form.get("client_assertion_type") != certs.ASSERTION_TYPE:
                return self.aad_error(400, "invalid_request", 90058, f"The request must contain client_assertion_type '{certs.ASSERTION_TYPE}'.")
            if principal.certificate_pem is None:
                return self.aad_error(
                    401, "invalid_client", 700027, f"Client assertion contains an invalid signature. No certificate is registered on application '{client_id}'."
                )
            problem = certs.verify_assertion(assertion, principal.client_id, principal.certificate_pem)
            if problem is not None:
                code = 700024 if "time range" in problem else 700021 if "doesn't match" in problem else 700027
                return self.aad_error(401, "invalid_client", code, problem)
        elif principal.client_secret is None or not hmac.compare_digest(secret.encode(), principal.client_secret.encode()):
            return self.aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, "
                f"for a secret added to app '{principal.client_id}'.",
            )
        resource = self._resource(form, v2)
        problem = self._check_resource(resource, tenant, form)
        if problem is not None:
            return problem
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"{self.base_url}/{principal.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "appid": principal.client_id,
            "appidacr": "1",
            "idtyp": "app",
            # an app-only token of a service principal names it by ids only: no name, no upn
            "oid": principal.object_id,
            "sub": principal.object_id,
            "tid": principal.tenant_id,
            "uti": _b64(os.urandom(16)),
            "ver": "1.0",
        }
        body = {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime, "access_token": self._sign(claims)}
        if not v2:
            body.update({"expires_on": str(claims["exp"]), "not_before": str(now), "resource": resource})
        return 200, body

    @staticmethod
    def _resource(form: dict[str, str], v2: bool) -> str | None:
        """The one https resource a token is asked for (v2 ``scope`` ``<resource>/.default``, v1 ``resource``)."""
        if not v2 and (form.get("resource") or not form.get("scope")):
            return form.get("resource", "")
        scopes = [s[: -len("/.default")] if s.endswith("/.default") else s for s in form.get("scope", "").split()]
        resources = [r for r in scopes if r.startswith("https://")]
        return resources[0] if len(resources) == 1 else None

    def _check_resource(self, resource: str | None, tenant: str, form: dict[str, str]) -> tuple[int, dict] | None:
        """The AADSTS error for a missing or unknown token audience, or None when ARM is asked for."""
        if resource is None:
            return self.aad_error(
                400, "invalid_scope", 70011, f"The provided value for the input parameter 'scope' is not valid. The scope {form.get('scope', '')} is not valid."
            )
        if resource.rstrip("/") not in {a.rstrip("/") for a in self.audiences} | set(PUBLIC_ARM_AUDIENCES):
            return self.aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request "
                "to the wrong tenant.",
            )
        return None

    def password_token(self, state: State, tenant: str, form: dict[str, str], v2: bool) -> tuple[int, dict]:
        """Resource owner password credentials grant (a user's name and password, a public client).

        The access token carries a user's claims (``upn``, ``unique_name``, ``name``, ``oid``,
        ``scp``, ``idtyp: user``) and the client application's ``appid``; the answer also has the
        ``id_token`` and ``client_info`` that MSAL uses to cache the account.
        """
        username = form.get("username", "")
        user = state.principals.get(username.lower())
        if user is None or user.username is None:
            return self.aad_error(400, "invalid_grant", 50034, f"The user account {username} does not exist in the {tenant} directory.")
        if not hmac.compare_digest(form.get("password", "").encode(), (user.password or "").encode()):
            return self.aad_error(400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
        if tenant.lower() not in ("organizations", "common", "adfs") and tenant.lower() != user.tenant_id.lower():
            return self.aad_error(400, "invalid_grant", 50034, f"The user account {username} does not exist in the {tenant} directory.")
        client_id = form.get("client_id", "")
        if not client_id:
            return self.aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        resource = self._resource(form, v2)
        problem = self._check_resource(resource, tenant, form)
        if problem is not None:
            return problem
        now = int(time.time())
        common = {"iat": now, "nbf": now, "exp": now + self.token_lifetime, "oid": user.object_id, "sub": user.object_id, "tid": user.tenant_id}
        claims = dict(
            common,
            aud=resource,
            iss=f"{self.base_url}/{user.tenant_id}/",
            appid=client_id,
            appidacr="0",
            idtyp="user",
            name=user.name,
            upn=user.username,
            unique_name=user.username,
            scp="user_impersonation",
            uti=_b64(os.urandom(16)),
            ver="1.0",
        )
        id_token = dict(common, aud=client_id, iss=f"{self.base_url}/{user.tenant_id}/v2.0", name=user.name, preferred_username=user.username, ver="2.0")
        client_info = _b64(json.dumps({"uid": user.object_id, "utid": user.tenant_id}).encode())
        body = {
            "token_type": "Bearer",
            "scope": f"{resource}/user_impersonation",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": self._sign(claims),
            "id_token": self._sign(id_token),
            "client_info": client_info,
        }
        return 200, body

    def user_realm(self, state: State, username: str) -> dict:
        """What MSAL asks before a password sign-in: every armsim user is a managed (cloud) account."""
        domain = username.rpartition("@")[2]
        return {"ver": "1.0", "account_type": "Managed", "domain_name": domain, "cloud_instance_name": "armsim.local", "cloud_audience_urn": "urn:armsim"}

    def _sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "HS256", "kid": "armsim"}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        sig = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64(sig)

    # --- ARM ----------------------------------------------------------------------------------
    def _challenge(self, tenant: str, description: str) -> dict:
        return {"WWW-Authenticate": f'Bearer authorization_uri="{self.base_url}/{tenant}", error="invalid_token", error_description="{description}"'}

    def authenticate(self, state: State, authorization: str | None) -> Principal:
        """Validate the bearer token of an ARM request; raise a 401 ArmError like ARM does."""
        tenant = state.tenant_id
        if not authorization:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                self._challenge(tenant, "The authentication failed because of missing 'Authorization' header."),
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                self._challenge(tenant, "The authentication failed because of an invalid 'Authorization' header."),
            )
        claims = self._verify(token.strip())
        if claims is None:
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.", self._challenge(tenant, "The access token is invalid."))
        now = time.time()
        if claims.get("exp", 0) < now:
            stamp = datetime.fromtimestamp(claims.get("exp", 0), UTC).strftime("%m/%d/%Y %H:%M:%S")
            current = datetime.fromtimestamp(now, UTC).strftime("%m/%d/%Y %H:%M:%S")
            raise ArmError(
                401,
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{stamp}' is earlier than current UTC time '{current}'.",
                self._challenge(tenant, "The access token has expired."),
            )
        if str(claims.get("aud", "")).rstrip("/") not in {a.rstrip("/") for a in self.audiences}:
            raise ArmError(
                401,
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{claims.get('aud')}'. It should exactly match with one of the "
                f"allowed audiences '{self.base_url}/','{self.base_url}'.",
                self._challenge(tenant, "The access token has been obtained for wrong audience or resource."),
            )
        if str(claims.get("tid", "")).lower() != tenant.lower():
            raise ArmError(
                401,
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the tenant '{self.base_url}/{tenant}/' associated with "
                f"this subscription. Please use the authority (URL) '{self.base_url}/{tenant}' to get the token. Note, if the subscription is transferred "
                "to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). "
                "If you just transferred your subscription and see this error message, please try back later.",
                self._challenge(tenant, "The access token is from the wrong issuer."),
            )
        if claims.get("idtyp") == "user":  # a user's token: the user is the principal, not the client app
            principal = state.principals.get(str(claims.get("upn", "")).lower())
        else:
            principal = state.principals.get(str(claims.get("appid", "")).lower())
        if principal is None:
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.", self._challenge(tenant, "The access token is invalid."))
        return principal

    def _verify(self, token: str) -> dict | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, TypeError):
            return None
        return claims if isinstance(claims, dict) else None

    # --- cloud metadata -----------------------------------------------------------------------
    def metadata(self, state: State, api_version: str) -> Any:
        base = self.base_url
        if api_version == "2015-01-01":
            return {
                "galleryEndpoint": f"{base}/gallery/",
                "graphEndpoint": f"{base}/graph/",
                "portalEndpoint": f"{base}/portal/",
                "authentication": {"loginEndpoint": f"{base}/", "audiences": [f"{base}/", base]},
            }
        return {
            "name": "armsim",
            "portal": f"{base}/portal",
            "resourceManager": f"{base}/",
            "authentication": {"loginEndpoint": f"{base}/", "audiences": [f"{base}/", base], "tenant": state.tenant_id, "identityProvider": "AAD"},
            "media": f"{base}/media/",
            "graphAudience": f"{base}/graph/",
            "graph": f"{base}/graph/",
            "microsoftGraphResourceId": f"{base}/msgraph/",
            "activeDirectoryDataLake": f"{base}/datalake/",
            "batch": f"{base}/batch/",
            "gallery": f"{base}/gallery/",
            "sqlManagement": f"{base}/sqlmanagement/",
            "vmImageAliasDoc": f"{base}/vmimagealiases.json",
            "logAnalyticsResourceId": f"{base}/loganalytics",
            "appInsightsResourceId": f"{base}/appinsights",
            "appInsightsTelemetryChannelResourceId": f"{base}/appinsights-telemetry",
            "attestationResourceId": f"{base}/attest",
            "synapseAnalyticsResourceId": f"{base}/synapse",
            "ossrDbmsResourceId": f"{base}/ossrdbms",
            "suffixes": {
                "azureDataLakeStoreFileSystem": "adls.armsim.local",
                "acrLoginServer": "acr.armsim.local",
                "sqlServerHostname": "sql.armsim.local",
                "azureDataLakeAnalyticsCatalogAndJob": "adla.armsim.local",
                "keyVaultDns": "vault.armsim.local",
                "storage": "storage.armsim.local",
                "azureFrontDoorEndpointSuffix": "afd.armsim.local",
                "storageSyncEndpointSuffix": "afs.armsim.local",
                "mhsmDns": "managedhsm.armsim.local",
                "mysqlServerEndpoint": "mysql.armsim.local",
                "postgresqlServerEndpoint": "postgres.armsim.local",
                "mariadbServerEndpoint": "mariadb.armsim.local",
                "synapseAnalytics": "synapse.armsim.local",
                "attestationEndpoint": "attest.armsim.local",
            },
        }
