"""Metrics tests write through a buffer of their own, flushed explicitly in the test's thread
(so inside the test's transaction), with database storage on whatever the suite's settings."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from metrics.buffer import MetricsBuffer, set_buffer
from metrics.services import metrics_flush


@pytest.fixture(autouse=True)
def metrics_buffer(settings):
    settings.DAC_METRICS_STORE = True
    buffer = MetricsBuffer(background=False)
    previous = set_buffer(buffer)
    yield buffer
    set_buffer(previous)


@pytest.fixture
def flush():
    return metrics_flush


def minutes_ago(now: datetime, minutes: float) -> datetime:
    return now - timedelta(minutes=minutes)


def put_requests(org_id: int, rows) -> None:
    """Store request rows as the buffer would: (ts, route, latency_ms[, status, error_class, method])."""
    from metrics.buffer import RequestRow, write_rows

    out = []
    for row in rows:
        ts, route, latency = row[:3]
        status = row[3] if len(row) > 3 else 200
        error_class = row[4] if len(row) > 4 else ""
        method = row[5] if len(row) > 5 else "GET"
        out.append(RequestRow(org_id, ts, method, route, status, float(latency), error_class))
    written, dropped, _ = write_rows(out, [])
    assert dropped == 0


def put_calls(org_id: int, rows) -> None:
    """Store provider calls: (ts, provider, model, outcome, latency_ms, input, output[, cost])."""
    from metrics.buffer import CallRow, write_rows

    out = []
    for row in rows:
        ts, provider, model, outcome, latency, tokens_in, tokens_out = row[:7]
        cost = row[7] if len(row) > 7 else 0.0
        out.append(CallRow(org_id, ts, provider, model, outcome, float(latency), None, tokens_in, tokens_out, False, cost))
    written, dropped, _ = write_rows([], out)
    assert dropped == 0
