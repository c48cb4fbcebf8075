# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ARM plumbing shared by every module: retry settings and error descriptions.

Kept free of SDK imports at module level so it can be unit-tested without Azure packages and so
``ansible-test sanity`` import checks pass; exceptions are recognised by duck typing.
"""

from __future__ import annotations

# azure-core's RetryPolicy retries 408/429/500/502/503/504 and sleeps for Retry-After when the
# service sends it; these bound the total so a throttling storm fails in minutes, not hours.
RETRY_SETTINGS = {
    "retry_total": 8,
    "retry_backoff_factor": 0.8,
    "retry_backoff_max": 60,
    "connection_timeout": 30,
    "read_timeout": 120,
}

# Long-running network operations: poll at this interval unless the service sends Retry-After.
LRO_POLLING_INTERVAL = 2

REQUEST_ID_HEADERS = ("x-ms-request-id", "x-ms-correlation-request-id", "client-request-id")


def _response_headers(exc):
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers or {}


def request_id_of(exc):
    """Return the ARM request id carried by an SDK exception's response, or None."""
    headers = _response_headers(exc)
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def error_details(exc):
    """Return ``{status, code, message, request_id}`` for any Azure SDK / identity exception."""
    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if not message:
        message = getattr(exc, "message", None) or str(exc)
    # azure-identity wraps AADSTS errors in ClientAuthenticationError whose text carries the code.
    if code is None and "AADSTS" in message:
        start = message.index("AADSTS")
        end = start + 6
        while end < len(message) and message[end].isdigit():
            end += 1
        code = message[start:end]
    if code is None:
        code = type(exc).__name__
    return {
        "status": status,
        "code": code,
        "message": " ".join(message.split()),
        "request_id": request_id_of(exc),
    }


def describe_error(exc, action=None):
    """One line for ``fail_json(msg=...)``: what failed, the ARM code, message and request id."""
    details = error_details(exc)
    parts = []
    if action:
        parts.append("%s failed:" % action)
    # A long-running operation that ends Failed is reported by a 200 status poll: no HTTP code then.
    if details["status"] and not 200 <= details["status"] < 300:
        parts.append("HTTP %s" % details["status"])
    parts.append("%s: %s" % (details["code"], details["message"]))
    text = " ".join(parts)
    if _looks_like_tls_failure(details["message"]):
        text += " (TLS verification failed: trust the endpoint's CA with REQUESTS_CA_BUNDLE; verification cannot be turned off)"
    if details["request_id"]:
        text += " (request id %s)" % details["request_id"]
    return text


def _looks_like_tls_failure(message):
    lowered = message.lower()
    return "certificate_verify_failed" in lowered or "certificate verify failed" in lowered
