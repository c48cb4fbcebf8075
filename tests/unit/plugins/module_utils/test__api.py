"""_api: the one ARM I/O layer, through the real azure-core/azure-mgmt-core pipeline.

The network is a fake ``requests`` session; everything above it (policies, retries, error
mapping, paging, long-running operations) is the real SDK code the modules run.
"""

import json
from types import SimpleNamespace

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import RequestsTransport
from requests.structures import CaseInsensitiveDict

from ansible_collections.jitaccess.azure.plugins.module_utils import _api, _arm, _auth
from ansible_collections.jitaccess.azure.plugins.module_utils._auth import CloudEndpoints

ARM = "https://management.example"


class Token:
    token = "header.payload.signature"
    expires_on = 4102444800  # 2100
    refresh_on = None


class Credential:
    def __init__(self):
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        return Token()

    def get_token_info(self, *scopes, options=None):
        self.scopes.append(scopes)
        return Token()


class FakeSession(requests.Session):
    """Answers each request with the next queued (status, body, headers); records what was sent."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.sent = []

    def request(self, method, url, **kwargs):  # noqa: PLR0917 - requests' signature
        self.sent.append({"method": method, "url": url, "headers": dict(kwargs.get("headers") or {}), "data": kwargs.get("data")})
        status, body, headers = (self.answers.pop(0) + ({},))[:3]
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 202: "Accepted", 204: "No Content", 404: "Not Found"}.get(status, "Error")
        response._content = b"" if body is None else json.dumps(body).encode()
        response._content_consumed = True
        response.raw = SimpleNamespace(enforce_content_length=False)  # no socket behind it
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json", "x-ms-request-id": "req-%d" % len(self.sent), "Date": "Tue, 01 Dec 2026 06:00:00 GMT", **headers}
        )
        response.url = url
        return response


def make_api(answers):
    session = FakeSession(answers)
    cloud = CloudEndpoints("test", "https://login.example", ARM)
    api = _api.ArmApi(Credential(), cloud, "sub-1", transport=RequestsTransport(session=session, session_owner=False))
    return api, session


def test_paged_list_follows_next_links_and_keeps_one_api_version():
    base = ARM + "/subscriptions/sub-1/providers/Microsoft.Network/networkInterfaces"
    api, session = make_api(
        [
            (200, {"value": [{"id": "a"}], "nextLink": base + "?api-version=2024-05-01&$skiptoken=1"}),
            (200, {"value": [{"id": "b"}], "nextLink": base + "?$skiptoken=2"}),
            (200, {"value": []}),
        ]
    )
    assert api.list_in_subscription("Microsoft.Network/networkInterfaces", "2024-05-01") == [{"id": "a"}, {"id": "b"}]
    urls = [sent["url"] for sent in session.sent]
    assert urls[0] == base + "?api-version=2024-05-01"
    assert urls[1] == base + "?api-version=2024-05-01&$skiptoken=1"  # already carries it: not added twice
    assert "$skiptoken=2" in urls[2] and urls[2].count("api-version=2024-05-01") == 1
    sent = session.sent[0]["headers"]
    assert sent["Authorization"] == "Bearer header.payload.signature" and sent["Accept"] == "application/json"
    assert _api.USER_AGENT in sent["User-Agent"]
    assert api.credential.scopes[0] == (ARM + "/.default",)
    assert api.server_date == "Tue, 01 Dec 2026 06:00:00 GMT"


def test_errors_keep_the_arm_code_and_request_id():
    api, _session = make_api(
        [
            (403, {"error": {"code": "AuthorizationFailed", "message": "no read on publicIPAddresses"}}),
            (401, {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
        ]
    )
    with pytest.raises(HttpResponseError) as caught:
        api.list("/x", "1")
    assert caught.value.status_code == 403 and caught.value.error.code == "AuthorizationFailed"
    assert _arm.describe_error(caught.value, "list") == "list failed: HTTP 403 AuthorizationFailed: no read on publicIPAddresses (request id req-1)"
    with pytest.raises(ClientAuthenticationError):
        api.get("/y", "1")


def test_get_put_post_delete_shapes():
    api, session = make_api(
        [
            (404, {"error": {"code": "ResourceNotFound", "message": "no such policy"}}),
            (200, {"id": "/p"}),
            (202, {"id": "/p", "virtualMachines": []}),
            (204, None),
        ]
    )
    assert api.get("/subscriptions/s/p one", "1") is None  # 404: absent, not an error
    assert session.sent[0]["url"] == ARM + "/subscriptions/s/p%20one?api-version=1"
    assert api.put("/p", "1", {"kind": "Basic"}) == {"id": "/p"}
    assert session.sent[1]["method"] == "PUT" and json.loads(session.sent[1]["data"]) == {"kind": "Basic"}
    assert _api.initiate_jit_request(api, "/p", {"virtualMachines": []}) == {"id": "/p", "virtualMachines": []}
    assert session.sent[2]["url"] == ARM + "/p/initiate?api-version=2020-01-01"
    api.delete("/p", "1")
    assert [sent["method"] for sent in session.sent] == ["GET", "PUT", "POST", "DELETE"]


def test_retries_are_transparent_unless_turned_off(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    throttled = (429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "1"})
    api, session = make_api([throttled, (200, {"id": "/p"}), throttled, (200, {"id": "/p"})])
    assert api.put("/p", "1", {}) == {"id": "/p"}
    assert len(session.sent) == 2  # retried once by the pipeline
    with pytest.raises(HttpResponseError) as caught:
        api.put("/p", "1", {}, retry=False)  # the caller re-reads and re-merges before writing again
    assert caught.value.status_code == 429 and len(session.sent) == 3


def test_long_running_delete_polls_the_async_operation():
    status = ARM + "/operations/1?api-version=1"
    api, session = make_api(
        [
            (202, None, {"Azure-AsyncOperation": status, "Retry-After": "1"}),
            (200, {"status": "InProgress"}, {"Retry-After": "1"}),
            (200, {"status": "Succeeded"}),
        ]
    )
    slept = []
    operation = api.begin_delete("/n/securityRules/r", "1")
    assert not operation.done
    api.wait(operation, sleep=slept.append)
    assert slept == [1, 1] and [sent["url"] for sent in session.sent[1:]] == [status, status]


def test_long_running_delete_failure_and_location_polling():
    status = ARM + "/operations/2?api-version=1"
    failed = {"status": "Failed", "error": {"code": "InternalServerError", "message": "rule is locked"}}
    api, _session = make_api([(202, None, {"Azure-AsyncOperation": status}), (200, failed)])
    with pytest.raises(HttpResponseError) as caught:
        api.wait(api.begin_delete("/n/securityRules/r", "1"), sleep=lambda seconds: None)
    assert caught.value.error.code == "InternalServerError"

    location = ARM + "/operationResults/3?api-version=1"
    api, session = make_api([(202, None, {"Location": location}), (202, None, {"Location": location}), (204, None)])
    slept = []
    api.wait(api.begin_delete("/n/securityRules/r", "1"), sleep=slept.append)
    assert slept == [_arm.LRO_POLLING_INTERVAL, _arm.LRO_POLLING_INTERVAL] and len(session.sent) == 3
    api, session = make_api([(200, None)])
    assert api.begin_delete("/n/securityRules/r", "1").done  # synchronous answer: nothing to poll


def test_sdk_problems_name_the_package_and_the_version_needed():
    good = {"azure-core": "1.31.0", "azure-mgmt-core": "1.4.0", "azure-identity": "1.19.0"}
    assert _api.sdk_problems(good) == []
    assert _api.sdk_problems(dict(good, **{"azure-core": "1.41.0", "azure-identity": "1.27.0b1"})) == []
    assert _api.sdk_problems(dict(good, **{"azure-core": "1.30.2", "azure-mgmt-core": None})) == [
        "azure-core 1.30.2 is installed; jitaccess.azure needs azure-core >= 1.31.0",
        "azure-mgmt-core (>= 1.4.0) is not installed",
    ]
    assert _api.sdk_problems() == []  # this test environment has what we need


def test_a_managed_identity_without_subscription_id_uses_the_only_one_it_sees():
    one = {"value": [{"subscriptionId": "sub-a", "id": "/subscriptions/sub-a"}]}
    api, session = make_api([(200, one)])
    assert _api.only_subscription(api) == "sub-a"
    assert session.sent[0]["url"] == ARM + "/subscriptions?api-version=" + _api.SUBSCRIPTIONS_API_VERSION
    two = {"value": [{"subscriptionId": "sub-b"}, {"subscriptionId": "sub-a"}]}
    api, _session = make_api([(200, two), (200, {"value": []})])
    with pytest.raises(_auth.AuthError, match=r"can see 2 subscriptions \(sub-a, sub-b\); name one"):
        _api.only_subscription(api)
    with pytest.raises(_auth.AuthError, match="cannot see any subscription"):
        _api.only_subscription(api)


def test_a_failed_sign_in_names_the_known_cause():
    class FailingCredential(Credential):
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError(message="Authentication failed: could not resolve host")

        get_token_info = get_token

    cloud = CloudEndpoints("test", "https://login.example", ARM)
    api = _api.ArmApi(FailingCredential(), cloud, "sub-1", transport=RequestsTransport(session=FakeSession([]), session_owner=False))
    with pytest.raises(ClientAuthenticationError, match="could not resolve host$"):
        api.get("/p", "1")
    api.sign_in_hint = "set disable_instance_discovery: true"
    with pytest.raises(ClientAuthenticationError, match=r"could not resolve host \(set disable_instance_discovery: true\)"):
        api.get("/p", "1")


def test_no_plugin_imports_a_per_service_sdk_or_talks_to_arm_outside_api():
    """_api is the only place that talks to ARM; no plugin needs azure-mgmt-network/-compute/-security."""
    import ast
    import pathlib

    plugins = pathlib.Path(_api.__file__).resolve().parents[1]
    offenders = []
    for path in plugins.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                per_service = name.startswith("azure.mgmt.") and not name.startswith("azure.mgmt.core")
                pipeline = name.startswith(("azure.mgmt.core", "azure.core.rest", "azure.core.pipeline")) and path.name != "_api.py"
                if per_service or pipeline:
                    offenders.append("%s imports %s" % (path.relative_to(plugins), name))
    assert offenders == []


def test_sdk_log_file_has_requests_and_no_token(tmp_path):
    import logging

    path = tmp_path / "azure-sdk.log"
    logger = logging.getLogger("azure")
    handlers, level = list(logger.handlers), logger.level
    try:
        _api.log_sdk_to_file(str(path))
        api, _session = make_api([(200, {"value": []})])
        api.list("/subscriptions/sub-1/providers/Microsoft.Network/networkSecurityGroups", "2024-05-01")
    finally:
        for handler in logger.handlers[len(handlers) :]:
            handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
    text = path.read_text(encoding="utf-8")
    assert "networkSecurityGroups" in text and "200" in text
    assert Token.token not in text and "REDACTED" in text
