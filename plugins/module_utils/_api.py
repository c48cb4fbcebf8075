# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one place that talks to Azure Resource Manager.

Every ARM call of the collection (paged lists, JIT policy GET/PUT/DELETE/initiate, NSG reads, rule
deletions with their long-running operation) goes through :class:`ArmApi`: raw REST JSON sent
through azure-mgmt-core's ``ARMPipelineClient`` with the credential, retry, TLS and user-agent
settings below. That pipeline and ``PipelineClient.send_request`` exist in every azure-core /
azure-mgmt-core release we admit, unlike the per-service clients' ``send_request`` (missing from
azure-mgmt-compute 33 and azure-mgmt-network 28, the versions azure.azcollection 3.12 pins), and
no SDK model is built: at 10,000 VMs model (de)serialisation costs more than the HTTP itself.

One error policy: an answer whose status is not expected raises azure-core's
``HttpResponseError`` with the ARM error parsed (404 -> ``ResourceNotFoundError``, 401 ->
``ClientAuthenticationError``); :mod:`_arm` turns it into the module's message.
"""

from __future__ import annotations

import importlib.util
import re
import time
from urllib.parse import parse_qs, quote, urlparse

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import LRO_POLLING_INTERVAL, RETRY_SETTINGS

COMPUTE_API_VERSION = "2024-07-01"
NETWORK_API_VERSION = "2024-05-01"
SECURITY_API_VERSION = "2020-01-01"
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
"""One api-version per provider: stable GA versions that every Azure cloud serves."""

USER_AGENT = "jitaccess.azure-ansible"

MINIMUM_SDK = (
    # (distribution, import name, oldest version we test: azure.azcollection 3.12.0's pins)
    ("azure-core", "azure.core", "1.31.0"),
    ("azure-mgmt-core", "azure.mgmt.core", "1.4.0"),
    ("azure-identity", "azure.identity", "1.19.0"),
)
"""The Azure SDK packages the collection needs at run time, and the oldest release of each that
``make test`` runs the integration tests against (tests/compat)."""

LRO_TERMINAL = {"succeeded": True, "failed": False, "canceled": False, "cancelled": False}


def pip_requirements():
    """``name>=version`` for each required package, for messages."""
    return ["'%s>=%s'" % (distribution, minimum) for distribution, _module, minimum in MINIMUM_SDK]


def _version_tuple(text):
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def sdk_problems(distributions=None):
    """One sentence per required Azure SDK package that is missing or older than we support.

    ``distributions`` maps a distribution name to its installed version (None: not installed);
    by default it is read from the environment. Checked before anything is imported, so an old
    SDK gives this message instead of an AttributeError deep in a call.
    """
    problems = []
    for distribution, module_name, minimum in MINIMUM_SDK:
        version = _installed_version(distribution, module_name) if distributions is None else distributions.get(distribution)
        if version is None:
            problems.append("%s (>= %s) is not installed" % (distribution, minimum))
        elif _version_tuple(version) < _version_tuple(minimum):
            problems.append("%s %s is installed; jitaccess.azure needs %s >= %s" % (distribution, version, distribution, minimum))
    return problems


def _installed_version(distribution, module_name):
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
    except (ImportError, ValueError):
        return None
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0"  # importable but without metadata: treated as too old to trust


def resource_path(resource_id):
    """An ARM id as a URL path (each segment percent-encoded, slashes kept)."""
    return quote(resource_id)


class LongRunningOperation:
    """A started ARM operation: where to poll it and how long to wait in between (``done`` when the
    service answered synchronously, 200 or 204)."""

    def __init__(self, status_url=None, location_url=None, retry_after=None, done=False):
        self.status_url = status_url
        self.location_url = location_url
        self.retry_after = retry_after
        self.done = done


class ArmApi:
    """ARM over one pipeline for one identity, in any subscription it can reach (paths name the
    subscription); ``subscription_id`` is the default one, None when none was configured.

    ``server_date`` is the ``Date`` header of the latest answer: ARM's clock, used to judge
    request end times without trusting the controller's clock.
    """

    def __init__(self, credential, cloud, subscription_id=None, transport=None):
        self.notices = []  # what the module should tell the user (e.g. which subscription it picked)
        self.sign_in_hint = None  # a known cause to name when signing in fails
        from azure.core.pipeline.policies import (
            CustomHookPolicy,
            HeadersPolicy,
            NetworkTraceLoggingPolicy,
            ProxyPolicy,
            RequestIdPolicy,
            RetryPolicy,
            UserAgentPolicy,
        )
        from azure.core.pipeline.transport import RequestsTransport
        from azure.mgmt.core import ARMPipelineClient
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy

        self.credential = credential
        self.cloud = cloud
        self.subscription_id = subscription_id
        self.server_date = None
        retry = {key: value for key, value in RETRY_SETTINGS.items() if key.startswith("retry_")}
        policies = [
            RequestIdPolicy(),
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(USER_AGENT),
            ProxyPolicy(),
            RetryPolicy(**retry),
            ARMChallengeAuthenticationPolicy(credential, *cloud.credential_scopes),
            CustomHookPolicy(),
            NetworkTraceLoggingPolicy(),
            ARMHttpLoggingPolicy(),
        ]
        if transport is None:
            # TLS is always verified (connection_verify defaults to True; REQUESTS_CA_BUNDLE is honoured).
            transport = RequestsTransport(connection_timeout=RETRY_SETTINGS["connection_timeout"], read_timeout=RETRY_SETTINGS["read_timeout"])
        self._client = ARMPipelineClient(base_url=cloud.resource_manager, policies=policies, transport=transport)

    # -- the one request primitive -------------------------------------------------------------
    def send(self, method, url, api_version=None, *, body=None, params=None, expect=(200, 201), retry=True):
        """Send one request; return the azure-core ``HttpResponse`` (body read).

        ``url`` is an ARM path (``/subscriptions/...``) or an absolute URL from ARM (nextLink,
        operation status). An unexpected status raises (see the module docstring). ``retry=False``
        turns off the pipeline's transparent retries for this call (a caller that must re-read
        before writing again handles them itself).
        """
        from azure.core.exceptions import ClientAuthenticationError
        from azure.core.rest import HttpRequest

        query = dict(params or {})
        if api_version and "api-version" not in parse_qs(urlparse(url).query):
            query["api-version"] = api_version
        kwargs = {} if body is None else {"json": body}
        request = HttpRequest(method, self._client.format_url(url), params=query, **kwargs)
        options = {} if retry else {"retry_total": 0}
        # stream=True: the pipeline does not decode the JSON too; it is decoded once, by the caller.
        try:
            response = self._client.send_request(request, stream=True, **options)
        except ClientAuthenticationError as exc:
            if self.sign_in_hint and getattr(exc, "response", None) is None:  # the token, not ARM, failed
                raise ClientAuthenticationError(message="%s (%s)" % (exc.message, self.sign_in_hint)) from None
            raise
        response.read()
        self.server_date = response.headers.get("Date") or self.server_date
        if response.status_code not in expect:
            raise_for(response)
        return response

    def request(self, method, url, api_version=None, *, body=None, params=None, expect=(200, 201), retry=True):
        """Like :meth:`send`, returning the decoded JSON body (None when the body is empty)."""
        response = self.send(method, url, api_version, body=body, params=params, expect=expect, retry=retry)
        return response.json() if response.content else None

    # -- shapes of ARM calls ------------------------------------------------------------------
    def get(self, resource_id, api_version):
        """One resource as REST JSON, or None when it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.request("GET", resource_path(resource_id), api_version)
        except ResourceNotFoundError:
            return None

    def put(self, resource_id, api_version, body, retry=True):
        return self.request("PUT", resource_path(resource_id), api_version, body=body, retry=retry)

    def post(self, resource_id, action, api_version, body):
        return self.request("POST", resource_path(resource_id) + "/" + action, api_version, body=body, expect=(200, 202))

    def delete(self, resource_id, api_version, retry=True):
        """Delete a resource that answers synchronously (200, or 204 when it was already gone)."""
        self.send("DELETE", resource_path(resource_id), api_version, expect=(200, 202, 204), retry=retry)

    def list(self, path, api_version, params=None, each=None):
        """Every item of a paged ARM list, following ``nextLink``. ``each(item)``, when given, runs
        on every item as its page arrives (to drop what the caller never reads before the next
        page: at fleet scale the whole list is in memory at once)."""
        items = []
        url, query = path, dict(params or {})
        while url:
            body = self.request("GET", url, api_version, params=query) or {}
            page = body.get("value") or []
            if each is not None:
                for item in page:
                    each(item)
            items.extend(page)
            url, query = body.get("nextLink"), {}
        return items

    def list_in_subscription(self, provider_path, api_version, params=None, subscription_id=None, each=None):
        """Every resource of a type in a subscription (``Microsoft.Network/networkSecurityGroups``);
        by default the API's subscription."""
        subscription_id = subscription_id or self.subscription_id
        return self.list("/subscriptions/%s/providers/%s" % (subscription_id, provider_path), api_version, params, each=each)

    # -- long-running deletions ---------------------------------------------------------------
    def begin_delete(self, resource_id, api_version):
        """Start deleting a resource; return its :class:`LongRunningOperation` for :meth:`wait`."""
        response = self.send("DELETE", resource_path(resource_id), api_version, expect=(200, 202, 204))
        if response.status_code != 202:
            return LongRunningOperation(done=True)
        headers = response.headers
        return LongRunningOperation(headers.get("Azure-AsyncOperation"), headers.get("Location"), _retry_after(headers))

    def wait(self, operation, sleep=time.sleep):
        """Poll ``operation`` until it ends; raise ``HttpResponseError`` if it failed."""
        if operation.done:
            return
        delay = operation.retry_after
        while True:
            sleep(delay if delay is not None else LRO_POLLING_INTERVAL)
            if operation.status_url:
                response = self.send("GET", operation.status_url)
                status = str((response.json() if response.content else {}).get("status", "")).lower()
                if status in LRO_TERMINAL:
                    if not LRO_TERMINAL[status]:
                        raise_for(response)
                    return
            elif operation.location_url:
                response = self.send("GET", operation.location_url, expect=(200, 202, 204))
                if response.status_code != 202:
                    return
            else:
                return
            delay = _retry_after(response.headers)


TRANSIENT_STATUSES = (408, 429, 500, 502, 503, 504)
"""What azure-core's RetryPolicy retries (and what a caller that retries by itself should)."""


def transient_delay(exc, fallback):
    """Seconds to wait before retrying after ``exc``, or None when ``exc`` is not transient: a
    throttled or failed answer (:data:`TRANSIENT_STATUSES`, ``Retry-After`` honoured, capped at the
    retry policy's maximum backoff) or a connection that failed or broke."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return fallback
    if isinstance(exc, HttpResponseError) and exc.status_code in TRANSIENT_STATUSES:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        after = _retry_after(headers)
        return min(after, RETRY_SETTINGS["retry_backoff_max"]) if after else fallback
    return None


def _retry_after(headers):
    value = headers.get("Retry-After")
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def raise_for(response):
    """Raise azure-core's error for an ARM answer (a failed status, or a failed operation)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, map_error
    from azure.mgmt.core.exceptions import ARMErrorFormat

    map_error(status_code=response.status_code, response=response, error_map={401: ClientAuthenticationError, 404: ResourceNotFoundError})
    raise HttpResponseError(response=response, error_format=ARMErrorFormat)


def connect(params, subscription_id=None):
    """Resolve the authentication options and return an :class:`ArmApi` (raises ``AuthError``).

    The one bootstrap shared by the modules and the jit_guard callback; nothing is sent to Azure
    here except the cloud metadata document when ``cloud_environment`` is a URL.
    """
    from ansible_collections.jitaccess.azure.plugins.module_utils import _auth

    settings = _auth.resolve_settings(params)
    cloud = _auth.resolve_cloud(settings.get("cloud_environment"))
    subscription_id = subscription_id or settings.get("subscription_id")
    if not subscription_id and settings["auth_source"] == "cli":
        subscription_id = _auth.cli_subscription_id()
    credential = _auth.build_credential(settings, cloud)
    if settings.get("log_path"):
        log_sdk_to_file(settings["log_path"])
    api = ArmApi(credential, cloud, subscription_id)
    api.sign_in_hint = _auth.sign_in_hint(settings, cloud)
    if not subscription_id and settings["auth_source"] == "msi":
        api.subscription_id = only_subscription(api)
        api.notices.append("subscription_id not given: using %s, the only subscription the managed identity can see" % api.subscription_id)
    return api


def subscription_ids(api):
    """The ids of the subscriptions the identity can see (``GET /subscriptions``)."""
    return [item["subscriptionId"] for item in api.list("/subscriptions", SUBSCRIPTIONS_API_VERSION) if item.get("subscriptionId")]


def only_subscription(api):
    """The one subscription the identity sees; an ``AuthError`` naming them when there are several."""
    from ansible_collections.jitaccess.azure.plugins.module_utils._auth import AuthError

    ids = subscription_ids(api)
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise AuthError("subscription_id is required: the managed identity cannot see any subscription (grant it a role on one, or set subscription_id)")
    raise AuthError("subscription_id is required: the managed identity can see %d subscriptions (%s); name one" % (len(ids), ", ".join(sorted(ids))))


def log_sdk_to_file(path):
    """Append the Azure SDK's log (requests, answers, retries, token acquisition) to ``path``.

    The ARM HTTP logging policy writes URLs, status codes and an allow-list of headers with
    ``Authorization`` and every other unknown header redacted; bodies are never logged.
    """
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("azure")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)


# -- Microsoft.Security JIT network access policies ----------------------------------------------
JIT_POLICIES = "Microsoft.Security/jitNetworkAccessPolicies"


def list_jit_policies(api, subscriptions=None):
    """Every JIT policy of each subscription (default: the API's; all regions and resource
    groups): one paged list per subscription."""
    policies = []
    for subscription in subscriptions or [api.subscription_id]:
        policies.extend(api.list_in_subscription(JIT_POLICIES, SECURITY_API_VERSION, subscription_id=subscription))
    return policies


PRICING_API_VERSION = "2024-01-01"
SERVERS_PLAN_PATH = "/subscriptions/%s/providers/Microsoft.Security/pricings/VirtualMachines"


def read_servers_plan(api, subscription):
    """``GET .../pricings/VirtualMachines`` (Defender for Servers) of ``subscription``: REST JSON."""
    return api.get(SERVERS_PLAN_PATH % subscription, PRICING_API_VERSION)


def enable_servers_plan_2(api, subscription):
    """``PUT .../pricings/VirtualMachines`` with Defender for Servers Plan 2 (billed per server)."""
    return api.put(SERVERS_PLAN_PATH % subscription, PRICING_API_VERSION, {"properties": {"pricingTier": "Standard", "subPlan": "P2"}})


def initiate_jit_request(api, policy_id, body):
    """``POST {policy}/initiate``: the request's echo as REST JSON (202 Accepted)."""
    return api.post(policy_id, "initiate", SECURITY_API_VERSION, body)
