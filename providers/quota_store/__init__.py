"""The two quota stores behind `providers.services.quota`: Redis (primary) and PostgreSQL
(fallback while Redis is unreachable). Both count per (org, bucket, UTC day), where a bucket is
a provider name or `key_tests:HH`; both answer with the same `Outcome`/`Counts` shapes so the
service can switch between them without knowing which one it talks to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

KEY_TESTS = "key_tests"

# Outcome statuses of a reservation.
OK = "ok"
OVER_REQUESTS = "requests"
OVER_TOKENS = "tokens"
MOVED = "moved"  # PostgreSQL only: the row was carried into Redis by another worker


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    requests: int  # the counter after the reservation (before it, when refused)
    tokens: int


@dataclass(frozen=True, slots=True)
class CounterRow:
    """A fallback row on its way into Redis."""

    org_id: int
    bucket: str
    day: str  # ISO date
    base_requests: int
    base_tokens: int
    base_version: int
    requests: int
    tokens: int
    overwrite: bool


def key_tests_bucket(hour: int) -> str:
    return f"{KEY_TESTS}:{hour:02d}"


def expires_at(bucket: str, day: date | str) -> int:
    """Unix time a counter stops mattering: the next UTC midnight, or for key tests the end of
    their hour. Unix time has no leap seconds, so a UTC day is exactly 86,400 s."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    start = (day.toordinal() - date(1970, 1, 1).toordinal()) * 86_400
    if bucket.startswith(KEY_TESTS + ":"):
        return start + (int(bucket.rsplit(":", 1)[1]) + 1) * 3_600
    return start + 86_400


__all__ = ["MOVED", "OK", "OVER_REQUESTS", "OVER_TOKENS", "CounterRow", "Counts", "Outcome", "KEY_TESTS", "expires_at", "key_tests_bucket"]
