"""ARM / identity errors become one clean line with code, message and request id."""

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import describe_error, error_details


class FakeResponse:
    def __init__(self, status, body, headers):
        self.status_code = status
        self.headers = headers
        self.reason = "x"
        self._body = body
        self.request = HttpRequest("GET", "https://arm/x")

    def text(self, encoding=None):
        return self._body

    def body(self):
        return self._body.encode()


def test_http_error_carries_code_message_and_request_id():
    response = FakeResponse(400, '{"error": {"code": "InvalidInitiateInput", "message": "not a subset of policy"}}', {"x-ms-request-id": "rid-1"})
    exc = HttpResponseError(response=response)
    details = error_details(exc)
    assert details == {"status": 400, "code": "InvalidInitiateInput", "message": "not a subset of policy", "request_id": "rid-1"}
    assert describe_error(exc, "initiate") == "initiate failed: HTTP 400 InvalidInitiateInput: not a subset of policy (request id rid-1)"


def test_identity_error_extracts_aadsts_code():
    exc = ClientAuthenticationError(message="ClientSecretCredential.get_token failed: AADSTS7000215: Invalid client secret provided.")
    assert error_details(exc)["code"] == "AADSTS7000215"
    assert "request id" not in describe_error(exc)


def test_tls_failure_gets_a_hint_not_a_way_out():
    exc = ServiceRequestError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    text = describe_error(exc, "list VMs")
    assert text.startswith("list VMs failed: ServiceRequestError:")
    assert "REQUESTS_CA_BUNDLE" in text


def test_failed_long_running_operation_omits_the_poll_status():
    response = FakeResponse(200, '{"error": {"code": "InternalServerError", "message": "operation failed"}}', {"x-ms-request-id": "rid-2"})
    exc = HttpResponseError(response=response)
    assert describe_error(exc, "delete rule") == "delete rule failed: InternalServerError: operation failed (request id rid-2)"
