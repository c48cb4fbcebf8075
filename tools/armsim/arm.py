"""ARM plumbing shared by the resource modules: requests, responses, errors, paging, LROs."""

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode


class ArmError(Exception):
    """An ARM error answer: {"error": {"code", "message"}} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, target: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.target = target

    def body(self) -> dict:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            err["target"] = self.target
        return {"error": err}


@dataclass
class Request:
    method: str
    path: str  # decoded path, no query
    raw_path: str  # path as received (still percent-encoded)
    raw_query: str
    headers: Any  # email.message.Message: case-insensitive .get()
    body: bytes
    client_ip: str
    client_port: int
    query: dict[str, str] = field(default_factory=dict)  # lower-cased keys

    def __post_init__(self) -> None:
        self.query = {k.lower(): v for k, v in parse_qsl(self.raw_query, keep_blank_values=True)}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def json(self) -> Any:
        if not self.body:
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Request body is empty.'.")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArmError(400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: '{exc}'.") from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (fault kind "reset")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(status, dumps(obj), dict(headers or {}))


def error_response(err: ArmError) -> Response:
    return Response(err.status, dumps(err.body()), dict(err.headers))


def not_found(rtype: str, name: str, rg: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def rg_not_found(rg: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


class Operations:
    """Long-running operations of the Network provider (Azure-AsyncOperation / Location polling)."""

    def __init__(self, in_progress_seconds: float) -> None:
        self.in_progress_seconds = in_progress_seconds
        self._ops: dict[str, dict] = {}
        self._lock = threading.Lock()

    def create(self, failed: dict | None = None) -> str:
        op_id = str(uuid.uuid4())
        with self._lock:
            self._ops[op_id] = {"created": time.monotonic(), "error": failed}
        return op_id

    def status(self, op_id: str) -> tuple[str, dict | None] | None:
        with self._lock:
            op = self._ops.get(op_id.lower())
        if op is None:
            return None
        if time.monotonic() - op["created"] < self.in_progress_seconds:
            return "InProgress", None
        if op["error"]:
            return "Failed", op["error"]
        return "Succeeded", None

    def clear(self) -> None:
        with self._lock:
            self._ops.clear()


@dataclass
class Ctx:
    """Everything a resource handler needs for one ARM request."""

    req: Request
    state: Any  # model.State
    app: Any  # server.App
    principal: Any  # model.Principal
    now: float  # simulated time
    lro_fault: dict | None = None  # a matching "lro_failed" fault: the write must fail

    @property
    def arm_url(self) -> str:
        return self.app.arm_url

    @property
    def api_version(self) -> str:
        return self.req.query.get("api-version", "")

    def start_lro(self, location: str, delete: bool = False) -> dict:
        """Register an operation and return the headers announcing it."""
        error = None
        if self.lro_fault:
            error = {
                "code": self.lro_fault.get("code") or "InternalServerError",
                "message": self.lro_fault.get("message") or "An error occurred. (armsim lro_failed fault)",
            }
        op_id = self.app.operations.create(error)
        base = f"{self.arm_url}/subscriptions/{self.state.subscription_id}/providers/Microsoft.Network/locations/{location.lower()}"
        api = quote(self.api_version, safe="")
        headers = {
            "Azure-AsyncOperation": f"{base}/operations/{op_id}?api-version={api}",
            "Retry-After": str(self.app.lro_retry_after),
        }
        if delete:
            headers["Location"] = f"{base}/operationResults/{op_id}?api-version={api}"
        return headers

    def paged(self, items: Iterable, render: Callable[[Any], bytes]) -> Response:
        """A page of a list answer, with an absolute nextLink when more remain."""
        items = list(items)
        try:
            skip = max(0, int(self.req.query.get("$skiptoken", "0")))
        except ValueError as exc:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
        size = self.app.page_size
        page = items[skip : skip + size]
        body = b'{"value":[' + b",".join(render(i) for i in page) + b"]"
        if skip + size < len(items):
            params = [(k, v) for k, v in parse_qsl(self.req.raw_query, keep_blank_values=True) if k.lower() != "$skiptoken"]
            params.append(("$skiptoken", str(skip + size)))
            next_link = f"{self.arm_url}{self.req.raw_path}?{urlencode(params)}"
            body += b',"nextLink":' + dumps(next_link)
        return Response(200, body + b"}")


# Route prefixes shared by every resource module (named groups: sub, rg).
SUB = r"^/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourceGroups/(?P<rg>[^/]+)"
NET = r"/providers/Microsoft\.Network"
SEC = r"/providers/Microsoft\.Security"
