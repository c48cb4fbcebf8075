"""The HTTPS front door: Entra ID, cloud metadata and ARM on one TLS port, the admin API on a
plain-HTTP loopback port (and under /admin on the TLS port), plus the data-plane gates.

Request flow for ARM paths: count (stats) -> faults -> bearer token -> api-version ->
subscription -> route -> handler (under ``App.lock``, after processing due JIT expiries).
"""

import collections
import contextlib
import copy
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from armsim import admin, bastion, certs, compute, jit, network, pricing, rbac, resources, seed
from armsim import profile as profiles
from armsim.arm import ArmError, Ctx, Operations, Request, Response, error_response, json_response
from armsim.auth import Auth
from armsim.clock import Clock, http_date

log = logging.getLogger("armsim")

WRITE_METHODS = {"PUT", "PATCH", "POST", "DELETE"}
LOGIN_RE = re.compile(
    r"^/(?P<tenant>[^/]+)/(?:(?P<v2cfg>v2\.0/\.well-known/openid-configuration)|(?P<v1cfg>\.well-known/openid-configuration)"
    r"|(?P<v2tok>oauth2/v2\.0/token)|(?P<v1tok>oauth2/token)|(?P<keys>discovery(?:/v2\.0)?/keys))$",
    re.IGNORECASE,
)
USER_REALM_RE = re.compile(r"^/common/userrealm/(?P<username>[^/]+)$", re.IGNORECASE)
SIGN_IN_TENANT_ALIASES = ("organizations", "common", "adfs")
"""Authorities a user may sign in at without naming the tenant (``adfs``: an ADFS authority such
as Azure Stack Hub's, ``https://host/adfs``): the seed's tenant answers."""
FAULT_MESSAGES = {
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - {kind}_ObservationWindow_00:05:00. "
        "For more information, see - https://aka.ms/srpthrottlinglimits",
    ),
    500: ("InternalServerError", "Encountered internal server error. Diagnostic information: tracking id '{rid}'."),
    502: ("BadGateway", "The gateway did not receive a response from 'Microsoft.Network' within the specified time period."),
    503: ("ServiceUnavailable", "The server (leader) is currently unable to receive requests. Please retry your request."),
    504: ("GatewayTimeout", "The gateway did not receive a response from the resource provider within the specified time period."),
    409: ("AnotherOperationInProgress", "Another operation on this or dependent resource is in progress. Retry the request after the operation completes."),
}


def operation_name(method: str, path: str) -> str:
    """HTTP method + the last resource-type segment (or the action name) of an ARM path."""
    segs = [s for s in path.split("/") if s]
    lower = [s.lower() for s in segs]
    rest = segs
    if "providers" in lower:
        idx = len(lower) - 1 - lower[::-1].index("providers")
        rest = segs[idx + 2 :]
        if not rest:
            return f"{method} {segs[idx + 1] if idx + 1 < len(segs) else 'providers'}"
    if not rest:
        return f"{method} /"
    return f"{method} {rest[-1] if len(rest) % 2 == 1 else rest[-2]}"


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.reads = 0
            self.writes = 0
            self.token_requests = 0
            self.by_method: collections.Counter = collections.Counter()
            self.by_operation: collections.Counter = collections.Counter()
            self.by_status: collections.Counter = collections.Counter()

    def count(self, method: str, operation: str) -> None:
        with self._lock:
            self.requests += 1
            if method in WRITE_METHODS:
                self.writes += 1
            else:
                self.reads += 1
            self.by_method[method] += 1
            self.by_operation[operation] += 1

    def status(self, status: int) -> None:
        with self._lock:
            self.by_status[str(status)] += 1

    def token(self) -> None:
        with self._lock:
            self.token_requests += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "reads": self.reads,
                "writes": self.writes,
                "by_method": dict(self.by_method),
                "by_operation": dict(self.by_operation),
                "by_status": dict(self.by_status),
                "token_requests": self.token_requests,
            }


class Faults:
    """Injected faults, matched by method + path substring, each applied ``times`` times."""

    KINDS = ("status", "reset", "latency", "lro_failed", "barrier")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict] = []
        # barrier fault id -> threading.Barrier; outlives the fault until its waiters are released
        self._barriers: dict[str, threading.Barrier] = {}

    def add(self, spec: Any) -> dict:
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        kind = spec.get("kind") or ("status" if "status" in spec else None)
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {', '.join(self.KINDS)} (or give 'status')")
        fault = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "method": str(spec["method"]).upper() if spec.get("method") else None,
            "path_contains": str(spec.get("path_contains") or ""),
            "times": int(spec.get("times", 1)),
        }
        if fault["times"] == 0 or fault["times"] < -1:
            raise ValueError("times must be >= 1, or -1 for unlimited")
        if kind == "status":
            status = int(spec.get("status", 0))
            if not 400 <= status <= 599:
                raise ValueError("status must be an HTTP error status (400-599)")
            fault["status"] = status
            if spec.get("retry_after") is not None:
                fault["retry_after"] = int(spec["retry_after"])
        if kind == "latency":
            fault["latency_ms"] = int(spec.get("latency_ms", 0))
        if kind == "barrier":
            fault["parties"] = int(spec.get("parties", 2))
            fault["timeout_ms"] = int(spec.get("timeout_ms", 30000))
            if fault["parties"] < 2 or fault["timeout_ms"] < 1:
                raise ValueError("a barrier needs parties >= 2 and timeout_ms >= 1")
        for key in ("code", "message"):
            if spec.get(key):
                fault[key] = str(spec[key])
        with self._lock:
            self._faults.append(fault)
            if kind == "barrier":
                self._barriers[fault["id"]] = threading.Barrier(fault["parties"], timeout=fault["timeout_ms"] / 1000.0)
        return fault

    def wait_at(self, fault: dict) -> None:
        """Hold a request at a barrier fault until ``parties`` requests arrived (or its timeout)."""
        with self._lock:
            barrier = self._barriers.get(fault["id"])
        if barrier is None:
            return
        with contextlib.suppress(threading.BrokenBarrierError):  # timed out or cleared: answer normally
            barrier.wait()

    def take(self, method: str, target: str, kinds: tuple[str, ...]) -> list[dict]:
        """Matching faults of these kinds (latency: all; others: the first), consuming one use each."""
        taken = []
        with self._lock:
            for fault in list(self._faults):
                if fault["kind"] not in kinds:
                    continue
                if fault["method"] and fault["method"] != method:
                    continue
                if fault["path_contains"].lower() not in target.lower():
                    continue
                taken.append(dict(fault))
                if fault["times"] > 0:
                    fault["times"] -= 1
                    if fault["times"] == 0:
                        self._faults.remove(fault)
                if fault["kind"] != "latency":
                    break
        return taken

    def list(self) -> list[dict]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            barriers, self._barriers = list(self._barriers.values()), {}
        for barrier in barriers:
            barrier.abort()


class RateLimit:
    """Remaining-quota headers: 12,000 reads and 1,200 writes per subscription per rolling hour."""

    LIMITS = {"reads": 12000, "writes": 1200}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, collections.deque] = {k: collections.deque() for k in self.LIMITS}

    def hit(self, kind: str) -> int:
        now = time.monotonic()
        with self._lock:
            seen = self._seen[kind]
            seen.append(now)
            while seen and seen[0] < now - 3600:
                seen.popleft()
            return max(0, self.LIMITS[kind] - len(seen))

    def reset(self) -> None:
        with self._lock:
            for d in self._seen.values():
                d.clear()


class App:
    """Everything behind the sockets. ``lock`` guards ``state``."""

    def __init__(
        self,
        seed_source: Any,
        *,
        apply_delay: float = 0.0,
        page_size: int = 100,
        lro_retry_after: int = 1,
        lro_in_progress: float = 0.5,
        token_lifetime: int = 3599,
        state_dir: str | None = None,
        profile: profiles.Profile | None = None,
    ) -> None:
        self.seed_data = copy.deepcopy(seed.load(seed_source))
        self.certificate_paths = self._generate_certificates(state_dir or tempfile.gettempdir())
        self.clock = Clock()
        self.lock = threading.RLock()
        self._build_states()
        self.apply_delay = float(apply_delay)
        self.deny_apply_delay = 0.0  # seconds before a policy write's deny rules appear (admin /config; reset to 0)
        self.apply_hold = False  # hold initiated requests until POST /admin/apply (admin /config; reset to false)
        self.initiate_source_rule = "exact"  # jit.SOURCE_RULES (admin /config; reset to exact)
        self.held_applies: list = []
        self.applies_due = 0
        self.page_size = int(page_size)
        self.lro_retry_after = int(lro_retry_after)
        self.operations = Operations(lro_in_progress)
        self.stats = Stats()
        self.faults = Faults()
        self.ratelimit = RateLimit()
        self.profile = profile or profiles.PROFILES["instant"]
        self.throttle = profiles.Throttle(self.profile)
        self.generation = 0  # bumped by reset: pending apply timers of an older generation do nothing
        self.token_lifetime = token_lifetime
        self.arm_url = ""
        self.auth: Auth | None = None
        self.gates: Any = None  # gate.GateManager, set by the server
        self.request_log: collections.deque = collections.deque(maxlen=5000)
        self.routes = [
            (method, re.compile(pattern, re.IGNORECASE), handler)
            for method, pattern, handler in resources.ROUTES + network.ROUTES + bastion.ROUTES + compute.ROUTES + jit.ROUTES + pricing.ROUTES
        ]

    def _generate_certificates(self, directory: str) -> dict[str, str]:
        """Principals with ``certificate: generate`` get a new key + certificate, written as PEM."""
        paths = {}
        principals = list(self.seed_data.get("principals") or [])
        for tenant in self.seed_data.get("extra_tenants") or []:
            principals += tenant.get("principals") or []
        for p in principals:
            if str(p.get("certificate", "")).lower() == "generate":
                client_id = str(p["client_id"])
                path = os.path.join(directory, f"principal-{client_id}.pem")
                p["certificate"] = certs.generate(path, str(p.get("name") or client_id))
                paths[client_id] = path
        return paths

    def _build_states(self) -> None:
        """``state`` is the seed's own subscription; ``subscriptions`` maps every subscription id
        (lower-cased) to its State (``extra_subscriptions`` share the tenant and principals)."""
        states = seed.build_states(self.seed_data, self.clock.now())
        self.state = states[0]
        self.subscriptions = {state.subscription_id.lower(): state for state in states}

    def state_of(self, resource_id: str) -> Any:
        """The State of the subscription an ARM id (or policy key) names; the primary one by default."""
        m = re.match(r"^/subscriptions/([^/]+)", resource_id, re.IGNORECASE)
        return self.subscriptions.get(m.group(1).lower(), self.state) if m else self.state

    def set_base_url(self, base_url: str) -> None:
        self.arm_url = base_url
        self.auth = Auth(base_url, self.token_lifetime)

    # --- admin operations -----------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.clock.reset()
            self._build_states()
            self.deny_apply_delay = 0.0
            self.apply_hold = False
            self.initiate_source_rule = "exact"
            self.applies_due -= len(self.held_applies)  # dropped, never run
            self.held_applies = []
            self.stats.reset()
            self.faults.clear()
            self.operations.clear()
            self.ratelimit.reset()
            self.throttle.reset()
            self.request_log.clear()
            if self.gates is not None:
                self.gates.reset_counters()
        threading.Thread(target=self.warm_caches, daemon=True).start()

    def warm_caches(self) -> None:
        """Render the JSON of static resources ahead of the first list call (runs in a thread)."""
        with self.lock:
            state = self.state
            vms, nics, nsgs = list(state.vms.values()), list(state.nics.values()), list(state.nsgs.values())
        for i in range(0, max(len(vms), len(nics), len(nsgs)), 200):
            with self.lock:
                if self.state is not state:
                    return  # reset meanwhile
                for vm in vms[i : i + 200]:
                    compute.vm_bytes(state, vm)
                for nic in nics[i : i + 200]:
                    network.nic_bytes(nic)
                for nsg in nsgs[i : i + 200]:
                    network.nsg_bytes(state, nsg)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock.advance(seconds)
            for state in self.subscriptions.values():
                jit.process_expiries(state, self.clock.now())

    def schedule_deny_sync(self, policy_key: str) -> None:
        """Bring the deny rules of every VM of a policy in line with it after ``deny_apply_delay``
        (a policy write, changed or not, re-applies them: see README, "Deny rules")."""
        generation = self.generation

        def run() -> None:
            with self.lock:
                state = self.state_of(policy_key)
                if self.generation == generation and policy_key in state.policies:
                    jit.sync_policy_deny_rules(state, state.policies[policy_key])

        timer = threading.Timer(self.deny_apply_delay, run)
        timer.daemon = True
        timer.start()

    def schedule_apply(self, policy_key: str, req: Any) -> None:
        generation = self.generation

        def run() -> None:
            with self.lock:
                self.applies_due -= 1
                if self.generation == generation:
                    jit.apply_request(self.state_of(policy_key), policy_key, req, self.clock.now())

        with self.lock:
            self.applies_due += 1  # until run() has run: GET /admin/applies lets a test wait for none
        if self.apply_hold:  # a test's barrier: applied at POST /admin/apply
            self.held_applies.append(run)
        elif self.apply_delay <= 0:
            run()
        else:
            timer = threading.Timer(self.apply_delay, run)
            timer.daemon = True
            timer.start()

    def release_applies(self) -> int:
        """Apply every held request now (in initiate order); returns how many."""
        with self.lock:
            held, self.held_applies = self.held_applies, []
        for run in held:
            run()
        return len(held)

    # --- dispatch -------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        path = req.path
        low = path.lower()
        if low == "/admin" or low.startswith("/admin/"):
            return admin.handle(self, req, path[len("/admin") :] or "/")
        realm = USER_REALM_RE.match(path)
        if realm:
            self.stats.token()
            return json_response(self.auth.user_realm(self.state, realm.group("username")))
        login = LOGIN_RE.match(path)
        if login and not low.startswith(("/subscriptions/", "/providers/", "/metadata/")):
            return self._login(req, login)
        if low.rstrip("/") == "/metadata/endpoints":
            resp = self._faults_for(req)
            if resp is not None:
                return resp
            return json_response(self.auth.metadata(self.state, req.query.get("api-version", "")))
        return self._arm(req)

    def _faults_for(self, req: Request, operation: str = "") -> Response | None:
        target = req.path + ("?" + req.raw_query if req.raw_query else "")
        for fault in self.faults.take(req.method, target, ("barrier",)):
            self.faults.wait_at(fault)
        for fault in self.faults.take(req.method, target, ("latency",)):
            time.sleep(fault["latency_ms"] / 1000.0)
        taken = self.faults.take(req.method, target, ("status", "reset"))
        if not taken:
            return None
        fault = taken[0]
        if fault["kind"] == "reset":
            return Response(0, drop=True)
        status = fault["status"]
        rid = str(uuid.uuid4())
        code, message = FAULT_MESSAGES.get(status, ("ArmsimInjectedFault", "An error was injected by armsim."))
        message = message.format(kind="Write" if req.method in WRITE_METHODS else "Read", rid=rid)
        err = ArmError(status, fault.get("code") or code, fault.get("message") or message)
        if "retry_after" in fault:
            err.headers["Retry-After"] = str(fault["retry_after"])
        if status == 429:
            err.headers["x-ms-ratelimit-remaining-subscription-" + ("writes" if req.method in WRITE_METHODS else "reads")] = "0"
        return error_response(err)

    def _throttled(self, req: Request) -> tuple[Response | None, dict]:
        """A 429 when the profile's token bucket of this subscription and operation type is empty
        (else None), and the remaining-tokens header for the answer ({} without buckets)."""
        m = re.match(r"^/subscriptions/([^/]+)", req.path, re.IGNORECASE)
        subscription = m.group(1) if m else self.state.subscription_id
        kind, left, wait = self.throttle.take(subscription, req.method)
        if left is None:
            return None, {}
        header = {f"x-ms-ratelimit-remaining-subscription-{kind}": str(left)}
        if not wait:
            return None, header
        err = ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of '{kind[:-1]}' requests for subscription '{subscription}' exceeded. "
            f"Please try again after '{wait}' seconds after additional tokens are available.",
        )
        err.headers["Retry-After"] = str(wait)
        return error_response(err), header

    def _login(self, req: Request, m: re.Match) -> Response:
        self.stats.token()
        if self.profile.token:
            time.sleep(self.profile.token)
        resp = self._faults_for(req)
        if resp is not None:
            return resp
        tenant = m.group("tenant")
        if m.group("v2cfg") or m.group("v1cfg"):
            if tenant.lower() in SIGN_IN_TENANT_ALIASES:
                tenant = self.state.tenant_id
            if tenant.lower() not in self.state.tenants:
                status, body = self.auth.aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
                return json_response(body, status)
            return json_response(self.auth.openid_configuration(tenant, v2=bool(m.group("v2cfg"))))
        if m.group("keys"):
            return json_response({"keys": []})
        if req.method != "POST":
            return json_response({"error": "invalid_request", "error_description": "AADSTS900561: The endpoint only accepts POST requests."}, 400)
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        with self.lock:
            status, body = self.auth.token(self.state, tenant, form, v2=bool(m.group("v2tok")))
        return json_response(body, status, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _arm(self, req: Request) -> Response:
        operation = operation_name(req.method, req.path)
        self.stats.count(req.method, operation)
        kind = "writes" if req.method in WRITE_METHODS else "reads"
        remaining = self.ratelimit.hit(kind)
        resp, bucket_header = self._throttled(req)
        if resp is None:
            resp = self._faults_for(req)
        if resp is None:
            try:
                resp = self._route(req)
            except ArmError as err:
                resp = error_response(err)
            # The profile's latency, outside App.lock: concurrent calls overlap as on Azure.
            delay = self.profile.latency(req.method, resp.body[:9] == b'{"value":')
            if delay:
                time.sleep(delay)
        if not resp.drop:
            resp.headers.update(bucket_header)
            resp.headers.setdefault(f"x-ms-ratelimit-remaining-subscription-{kind}", str(remaining))
        self.stats.status(resp.status)
        self.request_log.append({"method": req.method, "path": req.path, "query": req.raw_query, "status": resp.status, "operation": operation})
        return resp

    def _route(self, req: Request) -> Response:
        principal = self.auth.authenticate(self.state, req.header("Authorization"))
        if "api-version" not in req.query:
            raise ArmError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
        m = re.match(r"^/subscriptions/([^/]+)", req.path, re.IGNORECASE)
        if m and m.group(1).lower() not in self.subscriptions:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{m.group(1)}' could not be found.")
        state = self.subscriptions[m.group(1).lower()] if m else self.state
        handler, groups, path_matched = None, {}, False
        for method, pattern, fn in self.routes:
            match = pattern.match(req.path)
            if match:
                path_matched = True
                if method == req.method:
                    handler, groups = fn, match.groupdict()
                    break
        if handler is None:
            if path_matched:
                raise ArmError(501, "NotImplementedInArmsim", f"armsim does not implement {req.method} on '{req.path}'.")
            raise ArmError(
                404, "InvalidResourceType", f"The resource type could not be found for path '{req.path}' and api version '{req.query['api-version']}'."
            )
        if principal.actions is not None:
            rbac.authorize(principal, req.method, req.path, req.body)
        elif req.method in WRITE_METHODS and principal.role.lower() == "reader":
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{principal.client_id}' with object id '{principal.object_id}' does not have authorization to perform action "
                f"'{_action(req)}' over scope '{req.path}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            )
        lro_fault = None
        if req.method in ("PUT", "DELETE"):
            taken = self.faults.take(req.method, req.path + "?" + req.raw_query, ("lro_failed",))
            lro_fault = taken[0] if taken else None
        with self.lock:
            now = self.clock.now()
            jit.process_expiries(state, now)
            ctx = Ctx(req=req, state=state, app=self, principal=principal, now=now, lro_fault=lro_fault)
            return handler(ctx, **groups)


def _action(req: Request) -> str:
    segs = [s for s in req.path.split("/") if s]
    lower = [s.lower() for s in segs]
    if "providers" not in lower:
        return "Microsoft.Resources/subscriptions/resourceGroups/" + ("write" if req.method != "DELETE" else "delete")
    idx = len(lower) - 1 - lower[::-1].index("providers")
    rest = segs[idx + 2 :]
    types = rest[0::2]
    if len(rest) % 2 == 1 and req.method == "POST":
        return "/".join([segs[idx + 1], *types[:-1], types[-1], "action"])
    return "/".join([segs[idx + 1], *types, "delete" if req.method == "DELETE" else "write"])


# --- HTTP plumbing ---------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "armsim"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    # One buffered write per answer (flushed by handle_one_request) and no Nagle delay: without
    # these, headers and body go out as two small segments and every keep-alive request waits
    # for the peer's delayed ACK (~40 ms).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), fmt % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return http_date(self.server.app.clock.now())

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        raw_path = parts.path or "/"
        req = Request(
            method=self.command,
            path=unquote(raw_path),
            raw_path=raw_path,
            raw_query=parts.query,
            headers=self.headers,
            body=body,
            client_ip=self.client_address[0],
            client_port=self.client_address[1],
        )
        try:
            resp = self.server.dispatch(req)
        except Exception as exc:  # a bug in armsim: answer like ARM would, and log it
            log.exception("armsim internal error on %s %s", req.method, req.path)
            resp = error_response(ArmError(500, "InternalServerError", f"armsim internal error: {exc!r}"))
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        headers = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-cache"}
        headers.update(self.server.common_headers(req))
        headers.update(resp.headers)
        for key, value in headers.items():
            self.send_header(key, value)
        body_out = resp.body if resp.status not in (204, 304) and self.command != "HEAD" else b""
        self.send_header("Content-Length", str(len(body_out)))
        self.end_headers()
        if body_out:
            self.wfile.write(body_out)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], app: App, ssl_context: ssl.SSLContext | None, admin_only: bool = False) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.admin_only = admin_only
        super().__init__(addr, Handler)

    def dispatch(self, req: Request) -> Response:
        if self.admin_only:
            return admin.handle(self.app, req, req.path)
        return self.app.handle(req)

    def common_headers(self, req: Request) -> dict:
        if self.admin_only:
            return {}
        rid = str(uuid.uuid4())
        out = {
            "x-ms-request-id": rid,
            "x-ms-correlation-request-id": req.header("x-ms-correlation-request-id") or rid,
            "x-ms-routing-request-id": f"WESTEUROPE:{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}:{rid}",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
            "Pragma": "no-cache",
            "Expires": "-1",
        }
        if req.header("x-ms-client-request-id"):
            out["x-ms-client-request-id"] = req.header("x-ms-client-request-id")
        return out

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(15)  # TLS handshake, done in this worker thread, not in the accept loop
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


class ArmSimServer:
    """Owns the sockets: HTTPS (login + metadata + ARM + /admin), plain-HTTP admin, gates."""

    def __init__(self, app: App, host: str, port: int, ssl_context: ssl.SSLContext, ca_path: str) -> None:
        from armsim.gate import GateManager

        self.app = app
        self.https = _Server((host, port), app, ssl_context)
        self.admin = _Server((host, 0), app, None, admin_only=True)
        base = f"https://{host}:{self.https.server_address[1]}"
        app.set_base_url(base)
        self.ca_path = ca_path
        app.gates = GateManager(app, host)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.app.gates.start()
        threading.Thread(target=self.app.warm_caches, daemon=True).start()
        for srv in (self.https, self.admin):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        for srv in (self.https, self.admin):
            srv.shutdown()
            srv.server_close()
        self.app.gates.stop()

    def ready_info(self) -> dict:
        state = self.app.state
        principals = [p for p in state.principals.values() if p.tenant_id.lower() == state.tenant_id.lower()]
        principal = next((p for p in principals if p.client_secret), principals[0])
        base = self.app.arm_url
        return {
            "arm_url": base,
            "login_url": base,
            "metadata_url": f"{base}/metadata/endpoints?api-version=2019-05-01",
            "ca_bundle": self.ca_path,
            "tenant_id": state.tenant_id,
            "client_id": principal.client_id,
            "client_secret": principal.client_secret,
            "subscription_id": state.subscription_id,
            "admin_url": f"http://{self.admin.server_address[0]}:{self.admin.server_address[1]}",
            "authority": f"{base}/{state.tenant_id}",
            "gates": self.app.gates.ports(),
            "certificates": dict(self.app.certificate_paths),
            "apply_delay": self.app.apply_delay,
            "page_size": self.app.page_size,
        }
