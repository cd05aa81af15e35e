"""Writing metrics: recording (hot path, buffered), flushing, rolling up, pruning.

`request_record` and `provider_call_record` only touch memory: a Prometheus observation and a
row appended to the process buffer (metrics.buffer). `metrics_rollup_org` turns an org's raw
rows into per-minute and per-hour rollups (metrics.models) and applies the retention settings;
it runs after flushes, on read when due, and from `manage.py rollup_metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dac.storable_text import storable_text
from metrics import histogram, prom
from metrics.buffer import CallRow, RequestRow, get_buffer
from metrics.classify import OUTCOMES, PROVIDER_CATEGORIES
from metrics.models import DAY, HOUR, MINUTE, RollupState
from metrics.prices import estimate_cost_usd
from tenants.context import tenant_context

logger = logging.getLogger(__name__)

# Advisory-lock namespace for "rolling up org N" (audit uses 0x0DAC for its chains).
_ROLLUP_LOCK_NAMESPACE = 0x0DAD


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floored = floor_hour(t)
    return floored if floored == t else floored + timedelta(hours=1)


# --- recording (hot path) ---------------------------------------------------------------


def request_record(
    *, org_id: int | None, method: str, route: str, status: int, latency_ms: float, error_class: str
) -> None:
    """One HTTP request: Prometheus always, a database row when it ran for an org."""
    prom.REQUEST_LATENCY.labels(method, route).observe(latency_ms / 1000)
    prom.REQUESTS.labels(method, route, str(status)).inc()
    if error_class:
        prom.ERRORS.labels("request", error_class).inc()
    if org_id is not None and settings.DAC_METRICS_STORE:
        get_buffer().add_request(
            RequestRow(org_id, timezone.now(), method, route[:200], status, float(latency_ms), error_class)
        )


def provider_call_record(
    *,
    org_id: int,
    provider: str,
    model: str,
    outcome: str,
    latency_ms: float,
    first_token_ms: float | None,
    input_tokens: int | None,
    output_tokens: int | None,
    streamed: bool,
) -> None:
    """One provider call; `outcome` is "ok" or one of the seven provider categories.

    Called by the send pipeline (sync, inside the org's tenant context) after every call,
    including retries and fallbacks. Cost is estimated now from settings.DAC_MODEL_PRICES.
    """
    if outcome not in OUTCOMES:
        logger.warning("metrics: unknown provider outcome %r recorded as 'unavailable'", outcome)
        outcome = "unavailable"
    # A model name comes from the caller or the provider: text PostgreSQL cannot store would make
    # the flush drop the org's rows (U+0000) or everyone's (a lone surrogate cannot be encoded).
    model = storable_text((model or "")[:100])
    cost = estimate_cost_usd(provider=provider, model=model, input_tokens=input_tokens, output_tokens=output_tokens)
    prom.PROVIDER_LATENCY.labels(provider).observe(latency_ms / 1000)
    prom.PROVIDER_CALLS.labels(provider, outcome).inc()
    if first_token_ms is not None:
        prom.PROVIDER_FIRST_TOKEN.labels(provider).observe(first_token_ms / 1000)
    if outcome in PROVIDER_CATEGORIES:
        prom.ERRORS.labels("provider", outcome).inc()
    if input_tokens:
        prom.PROVIDER_TOKENS.labels(provider, "input").inc(input_tokens)
    if output_tokens:
        prom.PROVIDER_TOKENS.labels(provider, "output").inc(output_tokens)
    if cost:
        prom.PROVIDER_COST.labels(provider).inc(cost)
    if not settings.DAC_METRICS_STORE:
        return
    get_buffer().add_call(
        CallRow(
            org_id, timezone.now(), provider[:32], model, outcome, float(latency_ms),
            None if first_token_ms is None else float(first_token_ms),
            input_tokens, output_tokens, bool(streamed), cost,
        )
    )


def overhead_observe(ms: float) -> None:
    """The time DAC itself added to a gateway request (the value of X-DAC-Overhead-Ms)."""
    prom.OVERHEAD.observe(max(ms, 0.0) / 1000)


def metrics_flush() -> int:
    """Write this process's buffered rows now (tests, scripts, shutdown)."""
    return get_buffer().flush()


# --- rollups ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    raw: str
    rollup: str
    dims: tuple[str, ...]
    # column -> aggregate over raw rows, and the same column summed over rollups
    raw_sums: tuple[tuple[str, str], ...]


REQUESTS = _Kind(
    raw="metrics_requestmetric",
    rollup="metrics_requestrollup",
    dims=("route", "method", "error_class"),
    raw_sums=(("count", "count(*)"), ("latency_sum_ms", "sum(latency_ms)")),
)
CALLS = _Kind(
    raw="metrics_providercallmetric",
    rollup="metrics_providerrollup",
    dims=("provider", "model", "outcome"),
    raw_sums=(
        ("count", "count(*)"),
        ("latency_sum_ms", "sum(latency_ms)"),
        ("streamed_count", "count(*) FILTER (WHERE streamed)"),
        ("first_token_count", "count(first_token_ms)"),
        ("first_token_sum_ms", "coalesce(sum(first_token_ms), 0)"),
        ("input_tokens", "coalesce(sum(input_tokens), 0)"),
        ("output_tokens", "coalesce(sum(output_tokens), 0)"),
        ("cost_usd", "coalesce(sum(cost_usd), 0)"),
    ),
)
KINDS = (REQUESTS, CALLS)

# Dense histogram from the (bucket index, count) pairs of one group, from its lowest index.
_DENSE = "ARRAY(SELECT coalesce(g.ns[array_position(g.hbs, i)], 0) FROM generate_series(g.lo, g.hi) AS i ORDER BY i)"
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def _rollup_from_raw(cursor, kind: _Kind, *, org_id: int, step: int, lo: datetime, hi: datetime) -> None:
    dims = ", ".join(kind.dims)
    sum_cols = [col for col, _ in kind.raw_sums]
    cursor.execute(
        f"""
        WITH h AS (
            SELECT date_bin(make_interval(secs => %(step)s), ts, {_ORIGIN}) AS bucket, {dims},
                   width_bucket(latency_ms, %(bounds)s::float8[]) AS hb,
                   {", ".join(f"{agg} AS {col}" for col, agg in kind.raw_sums)}
            FROM {kind.raw}
            WHERE org_id = %(org)s AND ts >= %(lo)s AND ts < %(hi)s
            GROUP BY 1, {dims}, hb
        ), g AS (
            SELECT bucket, {dims}, min(hb) AS lo, max(hb) AS hi, array_agg(hb) AS hbs, array_agg(count) AS ns,
                   {", ".join(f"sum({col}) AS {col}" for col in sum_cols)}
            FROM h GROUP BY bucket, {dims}
        )
        INSERT INTO {kind.rollup} (org_id, resolution, bucket, {dims}, hist_offset, hist, {", ".join(sum_cols)})
        SELECT %(org)s, %(step)s, g.bucket, {", ".join(f"g.{d}" for d in kind.dims)}, g.lo, {_DENSE},
               {", ".join(f"g.{col}" for col in sum_cols)}
        FROM g
        """,
        {"org": org_id, "step": step, "lo": lo, "hi": hi, "bounds": list(histogram.BOUNDS)},
    )


def _rollup_coarser(cursor, kind: _Kind, *, org_id: int, source: int, target: int, lo: datetime, hi: datetime) -> None:
    """Build `target`-second rollups from the `source`-second rollups in [lo, hi)."""
    dims = ", ".join(kind.dims)
    sum_cols = [col for col, _ in kind.raw_sums]
    cursor.execute(
        f"""
        WITH m AS (
            SELECT * FROM {kind.rollup}
            WHERE org_id = %(org)s AND resolution = %(source)s AND bucket >= %(lo)s AND bucket < %(hi)s
        ), h AS (
            SELECT date_bin(make_interval(secs => %(target)s), m.bucket, {_ORIGIN}) AS bucket,
                   {", ".join(f"m.{d}" for d in kind.dims)}, m.hist_offset + u.i - 1 AS hb, sum(u.c) AS n
            FROM m, unnest(m.hist) WITH ORDINALITY AS u(c, i)
            WHERE u.c > 0
            GROUP BY 1, {", ".join(f"m.{d}" for d in kind.dims)}, hb
        ), g AS (
            SELECT bucket, {dims}, min(hb) AS lo, max(hb) AS hi, array_agg(hb) AS hbs, array_agg(n) AS ns
            FROM h GROUP BY bucket, {dims}
        ), s AS (
            SELECT date_bin(make_interval(secs => %(target)s), bucket, {_ORIGIN}) AS bucket, {dims},
                   {", ".join(f"sum({col}) AS {col}" for col in sum_cols)}
            FROM m GROUP BY 1, {dims}
        )
        INSERT INTO {kind.rollup} (org_id, resolution, bucket, {dims}, hist_offset, hist, {", ".join(sum_cols)})
        SELECT %(org)s, %(target)s, s.bucket, {", ".join(f"s.{d}" for d in kind.dims)}, g.lo, {_DENSE},
               {", ".join(f"s.{col}" for col in sum_cols)}
        FROM s JOIN g ON g.bucket = s.bucket AND {" AND ".join(f"g.{d} = s.{d}" for d in kind.dims)}
        """,
        {"org": org_id, "source": source, "target": target, "lo": lo, "hi": hi},
    )


def _delete_rollups(cursor, kind: _Kind, *, org_id: int, resolution: int, lo: datetime, hi: datetime) -> None:
    cursor.execute(
        f"DELETE FROM {kind.rollup} WHERE org_id = %s AND resolution = %s AND bucket >= %s AND bucket < %s",
        [org_id, resolution, lo, hi],
    )


def _earliest_raw(cursor, org_id: int) -> datetime | None:
    earliest = None
    for kind in KINDS:
        cursor.execute(f"SELECT min(ts) FROM {kind.raw} WHERE org_id = %s", [org_id])
        value = cursor.fetchone()[0]
        if value is not None and (earliest is None or value < earliest):
            earliest = value
    return earliest


def metrics_rollup_org(*, org_id: int, now: datetime | None = None, force: bool = False) -> bool:
    """Roll up an org's raw rows of complete minutes; prune by retention. True if it ran.

    Idempotent: the last DAC_METRICS_LATE_SECONDS before the previous run are recomputed from
    raw rows (delete + insert), so rows flushed late by another process still count. Skips
    when another process is rolling up the same org (advisory lock) or when the last run was
    less than DAC_METRICS_ROLLUP_SECONDS ago, unless `force`.
    """
    now = now or timezone.now()
    cutoff = floor_minute(now)
    late = timedelta(seconds=settings.DAC_METRICS_LATE_SECONDS)
    with tenant_context(org_id):
        state = RollupState.objects.filter(org_id=org_id).first()
        if not force and state is not None and now - state.updated_at < timedelta(seconds=settings.DAC_METRICS_ROLLUP_SECONDS):
            return False
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_ROLLUP_LOCK_NAMESPACE, org_id])
            if not cursor.fetchone()[0]:
                return False
            state = RollupState.objects.filter(org_id=org_id).first()  # as of the lock
            if state is not None:
                start = floor_minute(min(state.rolled_until, cutoff) - late)
            else:
                earliest = _earliest_raw(cursor, org_id)
                start = floor_minute(earliest) if earliest is not None else cutoff
            if start < cutoff:
                # Minutes only back to the minute retention (hour-aligned, so hours built from
                # minutes are whole); older hours come straight from raw rows. Minutes before
                # `start` in its hour were rolled by earlier runs and are reused. Hours and days
                # are built only once complete: reads take a partial hour or day from finer rows.
                minute_floor = ceil_hour(now - timedelta(hours=settings.DAC_METRICS_MINUTE_RETENTION_HOURS))
                minutes_lo = max(start, minute_floor)
                hour_lo, hour_hi = floor_hour(start), floor_hour(cutoff)
                hours_from_minutes_lo = max(hour_lo, minute_floor)
                day_lo, day_hi = floor_day(hour_lo), floor_day(cutoff)
                for kind in KINDS:
                    if minutes_lo < cutoff:
                        _delete_rollups(cursor, kind, org_id=org_id, resolution=MINUTE, lo=minutes_lo, hi=cutoff)
                        _rollup_from_raw(cursor, kind, org_id=org_id, step=MINUTE, lo=minutes_lo, hi=cutoff)
                    if hour_lo < hour_hi:
                        _delete_rollups(cursor, kind, org_id=org_id, resolution=HOUR, lo=hour_lo, hi=hour_hi)
                        if hour_lo < min(hours_from_minutes_lo, hour_hi):
                            _rollup_from_raw(cursor, kind, org_id=org_id, step=HOUR, lo=hour_lo, hi=min(hours_from_minutes_lo, hour_hi))
                        if hours_from_minutes_lo < hour_hi:
                            _rollup_coarser(cursor, kind, org_id=org_id, source=MINUTE, target=HOUR, lo=hours_from_minutes_lo, hi=hour_hi)
                    if day_lo < day_hi:
                        _delete_rollups(cursor, kind, org_id=org_id, resolution=DAY, lo=day_lo, hi=day_hi)
                        _rollup_coarser(cursor, kind, org_id=org_id, source=HOUR, target=DAY, lo=day_lo, hi=day_hi)
            rolled_until = max(cutoff, state.rolled_until) if state is not None else cutoff
            RollupState.objects.update_or_create(org_id=org_id, defaults={"rolled_until": rolled_until, "updated_at": now})
            _prune(cursor, org_id=org_id, now=now, rolled_until=rolled_until)
    return True


def _prune(cursor, *, org_id: int, now: datetime, rolled_until: datetime) -> None:
    late = timedelta(seconds=settings.DAC_METRICS_LATE_SECONDS)
    # Raw rows still needed to recompute the next run's window are kept whatever the retention.
    raw_before = min(now - timedelta(hours=settings.DAC_METRICS_RAW_RETENTION_HOURS), floor_hour(rolled_until - late))
    minutes_before = now - timedelta(hours=settings.DAC_METRICS_MINUTE_RETENTION_HOURS)
    hours_before = now - timedelta(days=settings.DAC_METRICS_HOUR_RETENTION_DAYS)
    for kind in KINDS:
        cursor.execute(f"DELETE FROM {kind.raw} WHERE org_id = %s AND ts < %s", [org_id, raw_before])
        cursor.execute(
            f"DELETE FROM {kind.rollup} WHERE org_id = %s AND ((resolution = %s AND bucket < %s) OR (resolution IN (%s, %s) AND bucket < %s))",
            [org_id, MINUTE, minutes_before, HOUR, DAY, hours_before],
        )


def metrics_rollup_all(*, now: datetime | None = None, force: bool = True) -> dict[int, bool]:
    """Roll up every org that has metric rows (the ops command); {org_id: ran}."""
    from tenants.context import operator_context

    with operator_context(reason="manage.py rollup_metrics", actor="manage.py"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT org_id FROM metrics_rollupstate UNION SELECT DISTINCT org_id FROM metrics_requestmetric"
            " UNION SELECT DISTINCT org_id FROM metrics_providercallmetric"
        )
        org_ids = sorted(row[0] for row in cursor.fetchall())
    return {org_id: metrics_rollup_org(org_id=org_id, now=now, force=force) for org_id in org_ids}
