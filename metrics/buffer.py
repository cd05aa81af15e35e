"""The in-process buffer that keeps metric writes off the hot path.

Recording a request or a provider call appends a tuple to a list under a lock (microseconds).
A daemon thread writes the rows every DAC_METRICS_FLUSH_SECONDS, or as soon as
DAC_METRICS_FLUSH_ROWS are waiting, one multi-row INSERT per org inside that org's tenant
context (RLS checks the writes as it checks every other; COPY is not allowed on RLS tables).
After writing an org's rows the thread rolls that org up if its rollup is due, so rollups stay
current with no cron. The buffer is flushed at interpreter exit too.

What a crash can lose: the rows still in the buffer (at most DAC_METRICS_FLUSH_SECONDS of
traffic, or DAC_METRICS_BUFFER_MAX_ROWS rows). Only metrics: the audit log is written
synchronously by `audit_record` and committed before it returns.

With DAC_METRICS_FLUSH_SECONDS=0 there is no thread: the recording thread flushes when the
buffer is full, and `flush()` writes the rest (tests and scripts).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections import defaultdict
from typing import NamedTuple

from django.conf import settings

logger = logging.getLogger(__name__)


class RequestRow(NamedTuple):
    org_id: int
    ts: object
    method: str
    route: str
    status: int
    latency_ms: float
    error_class: str


class CallRow(NamedTuple):
    org_id: int
    ts: object
    provider: str
    model: str
    outcome: str
    latency_ms: float
    first_token_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    streamed: bool
    cost_usd: float


_INSERT_REQUESTS = """
INSERT INTO metrics_requestmetric (org_id, ts, method, route, status, latency_ms, error_class)
SELECT %s, * FROM unnest(%s::timestamptz[], %s::varchar[], %s::varchar[], %s::int[], %s::float8[], %s::varchar[])
"""
_INSERT_CALLS = """
INSERT INTO metrics_providercallmetric
    (org_id, ts, provider, model, outcome, latency_ms, first_token_ms, input_tokens, output_tokens, streamed, cost_usd)
SELECT %s, * FROM unnest(%s::timestamptz[], %s::varchar[], %s::varchar[], %s::varchar[], %s::float8[],
                         %s::float8[], %s::int[], %s::int[], %s::bool[], %s::float8[])
"""


def write_rows(requests: list[RequestRow], calls: list[CallRow], *, quiet: bool = False) -> tuple[int, int, set[int]]:
    """Insert the rows, one statement per org and table; (written, dropped, orgs written)."""
    from django.db import DatabaseError, connection, transaction

    from tenants.context import tenant_context

    by_org: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for row in requests:
        by_org[row.org_id][0].append(row)
    for row in calls:
        by_org[row.org_id][1].append(row)
    written = dropped = 0
    orgs: set[int] = set()
    for org_id, (org_requests, org_calls) in by_org.items():
        try:
            with tenant_context(org_id), transaction.atomic(), connection.cursor() as cursor:
                if org_requests:
                    columns = list(zip(*org_requests, strict=True))[1:]
                    cursor.execute(_INSERT_REQUESTS, [org_id, *map(list, columns)])
                if org_calls:
                    columns = list(zip(*org_calls, strict=True))[1:]
                    cursor.execute(_INSERT_CALLS, [org_id, *map(list, columns)])
        except DatabaseError as exc:  # e.g. the org was deleted meanwhile: drop, never raise
            dropped += len(org_requests) + len(org_calls)
            if not quiet:
                _warn(f"metrics: dropped {len(org_requests) + len(org_calls)} rows of org {org_id}: {exc}".splitlines()[0])
        else:
            written += len(org_requests) + len(org_calls)
            orgs.add(org_id)
    return written, dropped, orgs


_last_warning = 0.0


def _warn(message: str) -> None:
    """Log a write failure at most every 60 s: a database outage must not flood the logs."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= 60:
        _last_warning = now
        logger.warning(message)


class MetricsBuffer:
    def __init__(self, *, background: bool | None = None):
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._requests: list[RequestRow] = []
        self._calls: list[CallRow] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._background = background
        self.dropped = 0

    @property
    def background(self) -> bool:
        if self._background is not None:
            return self._background
        return settings.DAC_METRICS_FLUSH_SECONDS > 0

    def __len__(self) -> int:
        return len(self._requests) + len(self._calls)

    def add_request(self, row: RequestRow) -> None:
        self._add(self._requests, row)

    def add_call(self, row: CallRow) -> None:
        self._add(self._calls, row)

    def _add(self, target: list, row) -> None:
        self._after_fork()
        with self._lock:
            held = len(self._requests) + len(self._calls)
            if held >= settings.DAC_METRICS_BUFFER_MAX_ROWS:
                self._count_dropped(1)
                return
            target.append(row)
            full = held + 1 >= settings.DAC_METRICS_FLUSH_ROWS
        if self.background:
            self._ensure_thread()
            if full:
                self._wake.set()
        elif full:
            self.flush()

    def flush(self, *, rollup: bool = False, quiet: bool = False) -> int:
        """Write everything buffered now; returns the rows written. Never raises."""
        with self._flush_lock:
            with self._lock:
                requests, self._requests = self._requests, []
                calls, self._calls = self._calls, []
            if not requests and not calls:
                return 0
            started = time.perf_counter()
            try:
                written, dropped, orgs = write_rows(requests, calls, quiet=quiet)
            except Exception as exc:  # noqa: BLE001 - the database is down: metrics give way
                if not quiet:
                    _warn(f"metrics: flush failed, {len(requests) + len(calls)} rows dropped: {exc}".splitlines()[0])
                self._count_dropped(len(requests) + len(calls))
                return 0
            self._count_dropped(dropped)
            from metrics import prom

            prom.FLUSH_SECONDS.observe(time.perf_counter() - started)
            if rollup:
                self._rollup(orgs)
            return written

    def _rollup(self, orgs: set[int]) -> None:
        from metrics.services import metrics_rollup_org

        for org_id in orgs:
            try:
                metrics_rollup_org(org_id=org_id)
            except Exception:  # noqa: BLE001 - a failed rollup is retried on the next flush or read
                logger.exception("metrics: rollup of org %s failed", org_id)

    def _count_dropped(self, n: int) -> None:
        if n:
            self.dropped += n
            from metrics import prom

            prom.ROWS_DROPPED.inc(n)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="dac-metrics-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        from django.db import connections

        while True:
            self._wake.wait(settings.DAC_METRICS_FLUSH_SECONDS or 1.0)
            self._wake.clear()
            try:
                self.flush(rollup=True)
            finally:
                connections.close_all()  # give the pooled connection back between flushes

    def _after_fork(self) -> None:
        # A forked worker (gunicorn --preload) inherits the lists but not the thread.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._flush_lock = threading.Lock()
            self._requests, self._calls = [], []
            self._wake = threading.Event()
            self._thread = None


_buffer = MetricsBuffer()


def get_buffer() -> MetricsBuffer:
    return _buffer


def set_buffer(buffer: MetricsBuffer) -> MetricsBuffer:
    """Swap the process buffer (tests); returns the previous one."""
    global _buffer
    previous, _buffer = _buffer, buffer
    return previous


@atexit.register
def _flush_at_exit() -> None:
    with contextlib.suppress(Exception):  # at exit the database may already be gone
        _buffer.flush(quiet=True)
