"""Kubernetes time formats (RFC 3339 in UTC) used in statuses, leases and logs."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(ts: float | None = None) -> str:
    """Second precision, as in `metav1.Time`: 2024-01-02T03:04:05Z."""
    value = time.time() if ts is None else ts
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float | None = None) -> str:
    """Microsecond precision, as in `metav1.MicroTime` (Lease renewTime)."""
    value = time.time() if ts is None else ts
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(ns: int | None = None) -> str:
    """Nanosecond precision, as in CRI log lines: 2024-01-02T03:04:05.123456789Z."""
    value = time.time_ns() if ns is None else ns
    seconds, frac = divmod(value, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for any of the formats above (fraction optional)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if "." in value:
        head, _, rest = value.partition(".")
        digits = ""
        for ch in rest:
            if not ch.isdigit():
                break
            digits += ch
        tz = rest[len(digits) :]
        value = f"{head}.{(digits + '000000')[:6]}{tz}"
    return datetime.fromisoformat(value).timestamp()
