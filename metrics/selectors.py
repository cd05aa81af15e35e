"""Reading usage: percentiles, counts, tokens and cost per path / provider / class / time step.

Every read covers a window ending now and stitches sources that do not overlap: per-day
rollups for the whole UTC days inside the window, per-hour rollups for the whole hours of its
partial days, per-minute rollups for its partial hours, and raw rows newer than the org's last
rollup (`RollupState.rolled_until`). So the work
grows with the window's number of buckets and the few minutes of raw rows since the last
rollup, not with history. The org comes from the tenant context (RLS filters too); a rollup
that is due runs first (`metrics_rollup_org`), so no cron is needed for fresh numbers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from dac.errors import ValidationFailed
from metrics import histogram
from metrics.classify import ERROR_CLASSES, PROVIDER_CATEGORIES
from metrics.models import DAY, HOUR, MINUTE, RollupState
from metrics.services import CALLS, REQUESTS, floor_minute, metrics_rollup_org
from tenants.context import require_org_id

WINDOWS: dict[str, timedelta] = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# Time-series step per window: 12 points an hour, 24 a day, 7 a week.
STEPS: dict[str, timedelta] = {"1h": timedelta(minutes=5), "24h": timedelta(hours=1), "7d": timedelta(days=1)}
WINDOW_LABELS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days"}
DEFAULT_WINDOW = "24h"

_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
_FILTERABLE = {
    "requests": {"route", "method", "error_class"},
    "calls": {"provider", "model", "outcome"},
}


def window_parse(value: str | None) -> str:
    window = value or DEFAULT_WINDOW
    if window not in WINDOWS:
        raise ValidationFailed(
            f"window must be one of {', '.join(WINDOWS)}.", detail={"window": [f"Unknown window {value!r}."]}
        )
    return window


@dataclass
class Agg:
    """Totals of one group, with its merged latency histogram."""

    count: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    counts: dict[int, int] = field(default_factory=dict)
    streamed: int = 0
    first_token_count: int = 0
    first_token_sum_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def percentile(self, q: float) -> float | None:
        value = histogram.percentile(self.counts, q)
        return None if value is None else round(value, 1)

    def add(self, other: Agg) -> Agg:
        self.count += other.count
        self.errors += other.errors
        self.latency_sum_ms += other.latency_sum_ms
        histogram.merge(self.counts, other.counts)
        self.streamed += other.streamed
        self.first_token_count += other.first_token_count
        self.first_token_sum_ms += other.first_token_sum_ms
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        return self

    @property
    def p50(self) -> float | None:
        return self.percentile(0.5)

    @property
    def p95(self) -> float | None:
        return self.percentile(0.95)

    @property
    def p99(self) -> float | None:
        return self.percentile(0.99)

    @property
    def mean_ms(self) -> float | None:
        return round(self.latency_sum_ms / self.count, 1) if self.count else None

    @property
    def error_rate(self) -> float | None:
        return round(self.errors / self.count, 4) if self.count else None

    @property
    def first_token_mean_ms(self) -> float | None:
        return round(self.first_token_sum_ms / self.first_token_count, 1) if self.first_token_count else None


@dataclass(frozen=True)
class Plan:
    """Where the window's data lives: (resolution, lo, hi) rollup ranges and raw rows from `raw_from`."""

    start: datetime
    end: datetime
    ranges: tuple[tuple[int, datetime, datetime], ...]
    raw_from: datetime


_LEVELS = (DAY, HOUR, MINUTE)


def _floor(t: datetime, seconds: int) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo)
    return epoch + ((t - epoch) // timedelta(seconds=seconds)) * timedelta(seconds=seconds)


def _ceil(t: datetime, seconds: int) -> datetime:
    floored = _floor(t, seconds)
    return floored if floored == t else floored + timedelta(seconds=seconds)


def _cover(lo: datetime, hi: datetime, levels: tuple[int, ...], minute_floor: datetime) -> list[tuple[int, datetime, datetime]]:
    """[lo, hi) as whole buckets, coarsest first, finer buckets only at the edges."""
    if lo >= hi or not levels:
        return []
    resolution = levels[0]
    if resolution == MINUTE:
        if lo < minute_floor:  # minutes already pruned: take the whole hour (window up to 59 min longer)
            return [(HOUR, _floor(lo, HOUR), _ceil(hi, HOUR))]
        return [(MINUTE, lo, hi)]
    a, b = _ceil(lo, resolution), _floor(hi, resolution)
    if a >= b:
        return _cover(lo, hi, levels[1:], minute_floor)
    return _cover(lo, a, levels[1:], minute_floor) + [(resolution, a, b)] + _cover(b, hi, levels[1:], minute_floor)


def window_plan(*, start: datetime, now: datetime, rolled_until: datetime | None) -> Plan:
    start = floor_minute(start)
    if rolled_until is None or rolled_until <= start:
        return Plan(start, now, (), start)
    rolled = min(rolled_until, now)
    minute_floor = now - timedelta(hours=settings.DAC_METRICS_MINUTE_RETENTION_HOURS)
    return Plan(start, now, tuple(_cover(start, rolled, _LEVELS, minute_floor)), rolled)


class _Source:
    def __init__(self, kind, *, org_id: int, plan: Plan, filters: dict[str, str]):
        self.kind = kind
        self.org_id = org_id
        self.plan = plan
        self.filters = filters

    def _where(self, *, raw: bool) -> tuple[str, list]:
        clauses, params = ["org_id = %s"], [self.org_id]
        if raw:
            clauses.append("ts >= %s AND ts <= %s")
            params += [self.plan.raw_from, self.plan.end]
        else:
            ranges = [
                "(resolution = %s AND bucket >= %s AND bucket < %s)" for _ in self.plan.ranges
            ]
            clauses.append("(" + " OR ".join(ranges) + ")" if ranges else "false")
            for resolution, lo, hi in self.plan.ranges:
                params += [resolution, lo, hi]
        for column, value in self.filters.items():
            clauses.append(f"{column} = %s")
            params.append(value)
        return " AND ".join(clauses), params

    def aggregate(self, group: tuple[str, ...], *, step: timedelta | None = None, hist: bool = True) -> dict[tuple, Agg]:
        """Totals (and histograms) per group; `t` in `group` is the time step."""

        def select(raw: bool) -> str:
            exprs = []
            for column in group:
                if column == "t":
                    exprs.append(f"date_bin(%s, {'ts' if raw else 'bucket'}, {_ORIGIN}) AS t")
                else:
                    exprs.append(column)
            return ", ".join(exprs)

        step_params = [step] if "t" in group else []
        raw_where, raw_params = self._where(raw=True)
        roll_where, roll_params = self._where(raw=False)
        keys = ", ".join(group)
        n = len(group)
        results: dict[tuple, Agg] = defaultdict(Agg)
        is_calls = self.kind is CALLS
        error_expr_raw = "outcome <> 'ok'" if is_calls else "error_class <> ''"
        raw_sums = (
            f"count(*), count(*) FILTER (WHERE {error_expr_raw}), sum(latency_ms)"
            + (
                ", count(*) FILTER (WHERE streamed), count(first_token_ms), coalesce(sum(first_token_ms), 0),"
                " coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0)"
                if is_calls else ""
            )
        )
        roll_sums = (
            f"sum(count), coalesce(sum(count) FILTER (WHERE {error_expr_raw}), 0), sum(latency_sum_ms)"
            + (
                ", sum(streamed_count), sum(first_token_count), sum(first_token_sum_ms),"
                " sum(input_tokens), sum(output_tokens), sum(cost_usd)"
                if is_calls else ""
            )
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT {keys}, sum(c), sum(e), sum(l){", sum(s), sum(fc), sum(fs), sum(i), sum(o), sum(cost)" if is_calls else ""}
                FROM (
                    SELECT {select(False)}, {roll_sums} FROM {self.kind.rollup} WHERE {roll_where} GROUP BY {keys}
                    UNION ALL
                    SELECT {select(True)}, {raw_sums} FROM {self.kind.raw} WHERE {raw_where} GROUP BY {keys}
                ) AS x({keys}, c, e, l{", s, fc, fs, i, o, cost" if is_calls else ""})
                GROUP BY {keys}
                """,
                step_params + roll_params + step_params + raw_params,
            )
            for row in cursor.fetchall():
                agg = results[tuple(row[:n])]
                agg.count, agg.errors, agg.latency_sum_ms = int(row[n] or 0), int(row[n + 1] or 0), float(row[n + 2] or 0)
                if is_calls:
                    (agg.streamed, agg.first_token_count, agg.first_token_sum_ms, agg.input_tokens,
                     agg.output_tokens, agg.cost_usd) = (
                        int(row[n + 3] or 0), int(row[n + 4] or 0), float(row[n + 5] or 0),
                        int(row[n + 6] or 0), int(row[n + 7] or 0), float(row[n + 8] or 0),
                    )
            if hist and results:
                cursor.execute(
                    f"""
                    SELECT {keys}, idx, sum(c) FROM (
                        SELECT {select(False)}, r.hist_offset + u.i - 1 AS idx, u.c
                        FROM {self.kind.rollup} r, unnest(r.hist) WITH ORDINALITY AS u(c, i)
                        WHERE {roll_where} AND u.c > 0
                        UNION ALL
                        SELECT {select(True)}, width_bucket(latency_ms, %s::float8[]) AS idx, 1
                        FROM {self.kind.raw} WHERE {raw_where}
                    ) AS x({keys}, idx, c)
                    GROUP BY {keys}, idx
                    """,
                    step_params + roll_params + step_params + [list(histogram.BOUNDS)] + raw_params,
                )
                for row in cursor.fetchall():
                    results[tuple(row[:n])].counts[int(row[n])] = int(row[n + 1])
        return dict(results)


def _rolled_until(org_id: int) -> datetime | None:
    return RollupState.objects.filter(org_id=org_id).values_list("rolled_until", flat=True).first()


@dataclass(frozen=True)
class UsageQuery:
    org_id: int
    window: str
    now: datetime
    plan: Plan
    request_filters: dict[str, str]
    call_filters: dict[str, str]

    @property
    def step(self) -> timedelta:
        return STEPS[self.window]

    def requests(self) -> _Source:
        return _Source(REQUESTS, org_id=self.org_id, plan=self.plan, filters=self.request_filters)

    def calls(self) -> _Source:
        return _Source(CALLS, org_id=self.org_id, plan=self.plan, filters=self.call_filters)


def usage_query(
    *, window: str = DEFAULT_WINDOW, now: datetime | None = None, filters: dict[str, str] | None = None, refresh: bool = True
) -> UsageQuery:
    """The current org's usage over `window`; rolls up first when a rollup is due."""
    org_id = require_org_id()
    window = window_parse(window)
    now = now or timezone.now()
    if refresh:
        metrics_rollup_org(org_id=org_id, now=now)
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    request_filters = {k: v for k, v in filters.items() if k in _FILTERABLE["requests"]}
    call_filters = {k: v for k, v in filters.items() if k in _FILTERABLE["calls"]}
    plan = window_plan(start=now - WINDOWS[window], now=now, rolled_until=_rolled_until(org_id))
    return UsageQuery(org_id, window, now, plan, request_filters, call_filters)


# --- the numbers the page and the API show --------------------------------------------------


def _stats(agg: Agg) -> dict:
    return {"count": agg.count, "errors": agg.errors, "error_rate": agg.error_rate, "mean_ms": agg.mean_ms,
            "p50_ms": agg.p50, "p95_ms": agg.p95, "p99_ms": agg.p99}


def _call_stats(agg: Agg) -> dict:
    return {**_stats(agg), "first_token_mean_ms": agg.first_token_mean_ms, "streamed": agg.streamed,
            "input_tokens": agg.input_tokens, "output_tokens": agg.output_tokens,
            "cost_usd": round(agg.cost_usd, 6)}


def usage_summary(query: UsageQuery) -> dict:
    requests = query.requests().aggregate(("org_id",)).get((query.org_id,), Agg())
    calls = query.calls().aggregate(("org_id",)).get((query.org_id,), Agg())
    return {"window": query.window, "start": query.plan.start, "end": query.now,
            "requests": _stats(requests), "provider_calls": _call_stats(calls)}


def usage_by_path(query: UsageQuery) -> list[dict]:
    rows = query.requests().aggregate(("route", "method"))
    out = [{"route": route, "method": method, **_stats(agg)} for (route, method), agg in rows.items()]
    return sorted(out, key=lambda r: (-r["count"], r["route"], r["method"]))


def usage_by_provider(query: UsageQuery) -> list[dict]:
    rows = query.calls().aggregate(("provider",))
    models = query.calls().aggregate(("provider", "model"), hist=False)
    out = []
    for (provider,), agg in rows.items():
        out.append({
            "provider": provider, **_call_stats(agg),
            "models": sorted(
                ({"model": model, "count": m.count, "input_tokens": m.input_tokens, "output_tokens": m.output_tokens,
                  "cost_usd": round(m.cost_usd, 6)} for (p, model), m in models.items() if p == provider),
                key=lambda r: -r["count"],
            ),
        })
    return sorted(out, key=lambda r: (-r["count"], r["provider"]))


def usage_errors(query: UsageQuery) -> dict:
    """Request errors by class (DAC's own and provider categories) and provider call failures."""
    requests = query.requests().aggregate(("error_class",), hist=False)
    calls = query.calls().aggregate(("outcome",), hist=False)
    by_class = {c: requests[(c,)].count for c in ERROR_CLASSES if (c,) in requests}
    by_category = {c: calls[(c,)].count for c in PROVIDER_CATEGORIES if (c,) in calls}
    return {"requests": by_class, "provider_calls": by_category}


def _steps(query: UsageQuery) -> list[datetime]:
    step = query.step
    epoch = datetime(2000, 1, 1, tzinfo=query.now.tzinfo)
    first = epoch + ((query.plan.start - epoch) // step) * step
    out, t = [], first
    while t <= query.now:
        out.append(t)
        t += step
    return out


def _series(query: UsageQuery) -> tuple[dict, dict, dict]:
    step = query.step
    requests = query.requests().aggregate(("t",), step=step)
    calls = query.calls().aggregate(("t",), step=step)
    per_provider = query.calls().aggregate(("t", "provider"), step=step, hist=False)
    return requests, calls, per_provider


def _points(query: UsageQuery, requests: dict, calls: dict, per_provider: dict) -> dict:
    providers = sorted({p for (_, p) in per_provider})
    points = []
    for t in _steps(query):
        r, c = requests.get((t,), Agg()), calls.get((t,), Agg())
        points.append({
            "t": t,
            "requests": _stats(r),
            "provider_calls": _call_stats(c),
            "providers": {
                p: {"count": a.count, "errors": a.errors, "input_tokens": a.input_tokens, "output_tokens": a.output_tokens,
                    "cost_usd": round(a.cost_usd, 6)}
                for p in providers if (a := per_provider.get((t, p))) is not None
            },
        })
    return {"window": query.window, "step_seconds": int(query.step.total_seconds()), "providers": providers, "points": points}


def usage_timeseries(query: UsageQuery) -> dict:
    """Per time step: request and call latency percentiles, and calls/tokens/cost per provider."""
    return _points(query, *_series(query))


def usage_overview(query: UsageQuery) -> tuple[dict, dict]:
    """(summary, timeseries) from one pass: the totals are the merged time steps (usage page)."""
    requests, calls, per_provider = _series(query)
    total_requests = Agg()
    for agg in requests.values():
        total_requests.add(agg)
    total_calls = Agg()
    for agg in calls.values():
        total_calls.add(agg)
    summary = {"window": query.window, "start": query.plan.start, "end": query.now,
               "requests": _stats(total_requests), "provider_calls": _call_stats(total_calls)}
    return summary, _points(query, requests, calls, per_provider)
