"""Simulated time and the date/duration formats ARM uses.

The simulated clock is real time plus an offset that ``POST /clock/advance`` moves forward. It
drives JIT request expiry only; tokens and apply delays use real time (see README).
"""

import re
import threading
import time
from datetime import UTC, datetime
from email.utils import formatdate


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += float(seconds)

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


def iso(ts: float) -> str:
    """Format like ARM/.NET: 2018-05-17T09:06:45.5691611Z (7 fractional digits)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_iso(value: str) -> float | None:
    """Parse an ISO 8601 date-time (any fraction length, Z or offset; no zone = UTC)."""
    if not isinstance(value, str):
        return None
    m = _ISO_RE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    ts = dt.timestamp() + frac
    zone = m.group(8)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ts -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return ts


_DURATION_RE = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(value: str) -> float | None:
    """Parse an ISO 8601 duration such as PT3H, PT180M, P1D, PT1H30M into seconds (None if invalid)."""
    if not isinstance(value, str) or value.upper() in ("P", "PT") or value.upper().endswith("T"):
        return None
    m = _DURATION_RE.match(value.strip())
    if not m or not any(m.groupdict().values()):
        return None
    factors = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    return sum(float(m.group(k)) * f for k, f in factors.items() if m.group(k))
