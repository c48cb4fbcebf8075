"""Service profiles: how fast armsim answers and when it throttles.

``instant`` (the default) answers at once and never throttles: call counts and semantics, no time.
``azure`` answers as Azure does from the outside: each call takes the latency of its class, and
ARM's token buckets (per subscription, per operation type) answer 429 with ``Retry-After`` when
empty. The figures and their sources are in README.md, "Profiles"; every one can be overridden:
``--profile azure --profile-set write=2.0 --profile-set writes_refill=5``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time

# Latency classes of an ARM call (seconds of server time before the answer leaves).
LATENCY_CLASSES = ("read", "list_page", "write", "action", "delete", "token")


@dataclasses.dataclass
class Profile:
    name: str
    # Latency per call class, seconds.
    read: float = 0.0  # GET of one resource
    list_page: float = 0.0  # GET of one page of a collection (up to page_size items)
    write: float = 0.0  # PUT/PATCH (synchronous part; LROs then poll for lro_in_progress)
    action: float = 0.0  # POST (e.g. the JIT initiate)
    delete: float = 0.0  # DELETE
    token: float = 0.0  # Entra ID token request
    # ARM token buckets (subscription scope): size and refill per second; 0 = no bucket.
    reads_bucket: int = 0
    reads_refill: float = 0.0
    writes_bucket: int = 0
    writes_refill: float = 0.0
    deletes_bucket: int = 0
    deletes_refill: float = 0.0
    # Defender for Cloud: seconds from an accepted initiate to its allow rules in the NSGs.
    apply_delay: float = 0.0
    # Long-running operations (NSG PUT/DELETE): seconds InProgress, Retry-After of the poll.
    lro_in_progress: float = 0.5
    lro_retry_after: int = 1

    def latency(self, method: str, is_list: bool) -> float:
        if method == "GET":
            return self.list_page if is_list else self.read
        if method == "DELETE":
            return self.delete
        if method == "POST":
            return self.action
        return self.write

    def describe(self) -> dict:
        return dataclasses.asdict(self)


PROFILES = {
    "instant": Profile("instant"),
    # Sources and reasoning: README.md, "Profiles". Buckets: Microsoft Learn, "Understand how Azure
    # Resource Manager throttles requests" (regional throttling and token bucket algorithm).
    "azure": Profile(
        "azure",
        read=0.12,
        list_page=0.35,
        write=1.0,
        action=1.0,
        delete=0.5,
        token=0.2,
        reads_bucket=250,
        reads_refill=25.0,
        writes_bucket=200,
        writes_refill=10.0,
        deletes_bucket=200,
        deletes_refill=10.0,
        apply_delay=15.0,
        lro_in_progress=2.0,
        lro_retry_after=1,
    ),
}


def load(name: str, overrides: list[str] | tuple = ()) -> Profile:
    """The named profile with ``key=value`` overrides applied; ValueError names a bad one."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    profile = dataclasses.replace(PROFILES[name])
    fields = {f.name: f.type for f in dataclasses.fields(Profile) if f.name != "name"}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep or key not in fields:
            raise ValueError(f"profile override {item!r}: expected key=value with key one of {', '.join(fields)}")
        number = float(value)
        if number < 0 or not math.isfinite(number):
            raise ValueError(f"profile override {item!r}: must be a finite number >= 0")
        setattr(profile, key, int(number) if fields[key] == "int" else number)
    return profile


def operation_kind(method: str) -> str:
    """ARM's operation type for throttling: reads (GET/HEAD), deletes, writes (the rest)."""
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class TokenBucket:
    """``size`` tokens, ``refill`` added per second up to ``size``; one taken per request."""

    def __init__(self, size: int, refill: float, clock=time.monotonic) -> None:
        self.size = size
        self.refill = refill
        self.clock = clock
        self.tokens = float(size)
        self.stamp = clock()

    def _top_up(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.size), self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now

    def take(self) -> tuple[bool, int, int]:
        """(admitted, tokens left, seconds to wait when not admitted)."""
        self._top_up()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, int(self.tokens), 0
        wait = (1.0 - self.tokens) / self.refill if self.refill > 0 else 3600.0
        return False, 0, max(1, math.ceil(wait))


class Throttle:
    """ARM's subscription-scope buckets, one per (subscription, operation type).

    Azure keys them per service principal and region too; a run uses one principal from one
    controller, so one bucket per subscription and type is what such a run meets.
    """

    def __init__(self, profile: Profile, clock=time.monotonic) -> None:
        self.profile = profile
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.throttled = 0

    def sizes(self, kind: str) -> tuple[int, float]:
        p = self.profile
        return {"reads": (p.reads_bucket, p.reads_refill), "writes": (p.writes_bucket, p.writes_refill), "deletes": (p.deletes_bucket, p.deletes_refill)}[kind]

    def take(self, subscription: str, method: str) -> tuple[str, int | None, int]:
        """(operation type, tokens left or None without a bucket, Retry-After seconds or 0)."""
        kind = operation_kind(method)
        size, refill = self.sizes(kind)
        if size <= 0:
            return kind, None, 0
        with self._lock:
            bucket = self._buckets.get((subscription.lower(), kind))
            if bucket is None:
                bucket = self._buckets[(subscription.lower(), kind)] = TokenBucket(size, refill, self.clock)
            admitted, left, wait = bucket.take()
            if not admitted:
                self.throttled += 1
        return kind, left, wait

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.throttled = 0
