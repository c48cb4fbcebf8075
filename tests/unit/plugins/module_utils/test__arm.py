"""_arm, the leaf: ARM / identity errors become one clean line with code, message and request id;
resource ids parse and build; Azure timestamps parse and format."""

from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from fakes import NOW, SUB, UTC, vm_id
from hypothesis import assume, given
from hypothesis import strategies as st

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError, describe_error, error_details

# --------------------------------------------------------------------------------------------------
# Errors


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


# --------------------------------------------------------------------------------------------------
# Resource ids


def test_parse_resource_id_vm():
    parsed = _arm.parse_resource_id(vm_id("web-1"))
    assert parsed == _arm.ResourceId(SUB, "rg-web", "Microsoft.Compute", "virtualMachines", "web-1", ())
    assert parsed.full_type == "Microsoft.Compute/virtualMachines"
    assert parsed.leaf_name == "web-1"
    assert parsed.to_id() == vm_id("web-1")


def test_parse_resource_id_case_insensitive_keywords_and_children():
    value = "/SUBSCRIPTIONS/s/RESOURCEGROUPS/Rg/PROVIDERS/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default/"
    parsed = _arm.parse_resource_id(value)
    assert parsed.resource_group == "Rg"
    assert parsed.children == (("jitNetworkAccessPolicies", "default"),)
    assert parsed.is_type("microsoft.security/LOCATIONS/jitnetworkaccesspolicies")
    assert parsed.leaf_name == "default"
    assert parsed.to_id() == "/subscriptions/s/resourceGroups/Rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"


def test_parse_resource_id_subscription_level():
    parsed = _arm.parse_resource_id("/subscriptions/s/providers/Microsoft.Security/pricings/VirtualMachines")
    assert parsed.resource_group is None
    assert parsed.to_id() == "/subscriptions/s/providers/Microsoft.Security/pricings/VirtualMachines"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "vm1",
        "/subscriptions",
        "/subscriptions/s/resourceGroups",
        "/subscriptions/s/resourceGroups/rg",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions",
        "/subscriptions/s/resourceGroups/rg/things/Microsoft.Compute/virtualMachines/vm",
        "/subscriptions/s/resourceGroups//providers/Microsoft.Compute/virtualMachines/vm",
        "/tenants/t/providers/Microsoft.Compute/virtualMachines/vm",
    ],
)
def test_parse_resource_id_malformed(value):
    with pytest.raises(JitValidationError, match="is malformed: expected /subscriptions/"):
        _arm.parse_resource_id(value)


def test_parse_vm_id_rejects_other_types():
    assert _arm.parse_vm_id(vm_id("a")).name == "a"
    for value in (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic",
        "/subscriptions/s/providers/Microsoft.Compute/virtualMachines/vm",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions/x",
    ):
        with pytest.raises(JitValidationError, match="is not a virtual machine id"):
            _arm.parse_vm_id(value)


def test_jit_policy_id_roundtrip():
    value = _arm.jit_policy_id(SUB, "rg-web", "West Europe")
    assert value == f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    assert _arm.parse_jit_policy_id(value) == _arm.PolicyKey(SUB, "rg-web", "westeurope", "default")
    assert _arm.policy_key_id(_arm.PolicyKey(SUB, "rg-web", "westeurope", "default")) == value
    with pytest.raises(JitValidationError, match="is not a JIT policy id"):
        _arm.parse_jit_policy_id(vm_id("a"))


@pytest.mark.parametrize("args", [("", "rg", "loc", "p"), ("s", "r/g", "loc", "p"), ("s", "rg", None, "p"), ("s", "rg", "loc", " ")])
def test_jit_policy_id_rejects(args):
    with pytest.raises(JitValidationError, match="expected a non-empty name without '/'"):
        _arm.jit_policy_id(*args)


@pytest.mark.parametrize("args", [("", "rg", "vm"), ("s", None, "vm"), ("s", "rg", "a/b")])
def test_vm_id_rejects(args):
    with pytest.raises(JitValidationError, match="virtual machine"):
        _arm.vm_id(*args)


def test_normalize_and_same_id():
    assert _arm.normalize_id(" /Subscriptions/S/x/ ") == "/subscriptions/s/x"
    assert _arm.normalize_id("") == ""
    assert _arm.same_id(vm_id("Web-1"), vm_id("web-1").upper() + "/")
    assert not _arm.same_id(vm_id("a"), vm_id("b"))


def test_vm_id_from_reference():
    assert _arm.vm_id_from_reference({"id": " " + vm_id("a") + " "}) == vm_id("a")
    assert _arm.vm_id_from_reference({"name": "a", "resource_group": "rg-web", "id": None}, SUB) == vm_id("a")


@pytest.mark.parametrize(
    ("reference", "subscription", "message"),
    [
        ("vm1", SUB, "expected {id} or {name, resource_group}"),
        ({"id": vm_id("a"), "name": "a"}, SUB, "sets id together with name"),
        ({"name": "a"}, SUB, "is incomplete"),
        ({"name": "a", "resource_group": "rg"}, None, "needs a subscription"),
        ({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n"}, SUB, "not a virtual machine id"),
    ],
)
def test_vm_id_from_reference_rejects(reference, subscription, message):
    with pytest.raises(JitValidationError, match=message):
        _arm.vm_id_from_reference(reference, subscription)


@given(
    st.text(alphabet="abcdefABCDEF0123456789-", min_size=1, max_size=12),
    st.text(alphabet="abcRG_-.()", min_size=1, max_size=12),
    st.text(alphabet="abcVM-_", min_size=1, max_size=12),
)
def test_vm_id_parse_roundtrip(sub, rg, name):
    parsed = _arm.parse_vm_id(_arm.vm_id(sub, rg, name))
    assert (parsed.subscription, parsed.resource_group, parsed.name) == (sub, rg, name)
    assert _arm.same_id(parsed.to_id(), _arm.vm_id(sub, rg, name).upper())


# --------------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T10:00:00Z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T10:00:00.1234567Z", datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-21T10:00:00.5", datetime(2026, 11, 21, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-21T10:00:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21 10:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T11:30:00+01:30", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T08:00:00.0000000-0200", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21t10:00:00z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 21, 10, 0), datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 21, 11, 0, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
    ],
)
def test_parse_azure_datetime(text, expected):
    parsed = _arm.parse_azure_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-21", None, 12])
def test_parse_azure_datetime_rejects(text):
    with pytest.raises(JitValidationError, match="timestamp"):
        _arm.parse_azure_datetime(text)


def test_format_azure_datetime():
    assert _arm.format_azure_datetime(NOW) == "2026-11-21T10:00:00Z"
    assert _arm.format_azure_datetime("2026-11-21T10:00:00.25+00:00") == "2026-11-21T10:00:00.250000Z"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_datetime_roundtrip(value):
    assert _arm.parse_azure_datetime(_arm.format_azure_datetime(value)) == value


# --- the one strict number reader (issue 14, inputs) -----------------------------------------------

UNICODE_DIGITS = st.characters(categories=("Nd", "No"), exclude_characters="0123456789")


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_whole_number_reads_ascii_digits_and_ints(number):
    assert _arm.whole_number(str(number), "n", "0-9") == number
    assert _arm.whole_number(f"  {number}\t", "n", "0-9") == number
    assert _arm.whole_number(number, "n", "0-9") == number


@given(st.text(UNICODE_DIGITS, min_size=1, max_size=6))
def test_whole_number_refuses_unicode_digits(text):
    with pytest.raises(_arm.JitValidationError, match="is not a whole number: allowed 0-9"):
        _arm.whole_number(text, "n", "0-9")


@pytest.mark.parametrize("value", ["+22", "-1", "1_000", "22.0", "1e3", "2 2", "", " ", "0x16", "1" * 16, "9" * 5000, True, None, 22.0, [22], b"22"])
def test_whole_number_refuses_everything_else(value):
    with pytest.raises(_arm.JitValidationError) as info:
        _arm.whole_number(value, "wait_timeout", "0 or more seconds")
    assert str(info.value).startswith("wait_timeout ") and "allowed 0 or more seconds" in str(info.value)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.booleans()))
def test_whole_number_never_raises_anything_but_the_validation_error(value):
    try:
        result = _arm.whole_number(value, "n", "0-9")
    except _arm.JitValidationError:
        return
    assert isinstance(result, int) and not isinstance(result, bool)


# --- scrubbing secrets (issue 14, secrets) -----------------------------------------------------------


@given(st.text(min_size=1, max_size=12), st.text(max_size=20), st.text(max_size=20))
def test_scrub_removes_every_occurrence_in_nested_values(secret, before, after):
    assume(secret not in _arm.SCRUBBED)  # "*" cannot vanish from a text made of "*"
    value = {"msg": before + secret + after, "items": [secret, (before, secret)], "count": 3, secret: "kept"}
    cleaned = _arm.scrub(value, [secret])
    for text in (cleaned["msg"], cleaned["items"][0], *cleaned["items"][1]):
        assert secret not in text
    assert cleaned["count"] == 3 and secret in cleaned and isinstance(cleaned["items"][1], tuple)


def test_scrub_replaces_the_longest_secret_first_and_keeps_text_without_secrets():
    assert _arm.scrub("a=abc%d", ["abc%d", "abc"]) == "a=" + _arm.SCRUBBED
    assert _arm.scrub("nothing here", ["abc"]) == "nothing here"
    assert _arm.scrub({"x": 1}, []) == {"x": 1}


def test_scrub_copies_only_what_holds_a_secret():
    """A fleet's facts are tens of megabytes: what holds no secret is returned as it is (no copy
    beside the original), and the original is never changed."""
    quiet = {"vms": [{"name": "web-1"}], "ports": (22, 3389)}
    value = {"quiet": quiet, "loud": {"msg": "token s3cret", "n": 1}, "list": ["a", "s3cret"]}
    cleaned = _arm.scrub(value, ["s3cret"])
    assert cleaned["quiet"] is quiet and cleaned is not value
    assert cleaned["loud"] == {"msg": "token " + _arm.SCRUBBED, "n": 1} and cleaned["list"] == ["a", _arm.SCRUBBED]
    assert value["loud"]["msg"] == "token s3cret" and value["list"] == ["a", "s3cret"]
    assert _arm.scrub(quiet, ["s3cret"]) is quiet
