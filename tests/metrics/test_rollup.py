"""Rollups: windows stitched from day/hour/minute buckets and raw rows, retention, late rows."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from metrics import histogram
from metrics.models import DAY, HOUR, MINUTE, ProviderRollup, RequestMetric, RequestRollup, RollupState
from metrics.selectors import usage_by_path, usage_by_provider, usage_errors, usage_query, usage_summary, usage_timeseries, window_plan
from metrics.services import metrics_rollup_org
from tenants.context import tenant_context
from tests.metrics.conftest import put_calls, put_requests

pytestmark = pytest.mark.django_db

NOW = datetime(2031, 3, 10, 14, 37, 25, tzinfo=UTC)


def ago(**kwargs) -> datetime:
    return NOW - timedelta(**kwargs)


@pytest.fixture
def history(org_a, settings):
    """Requests at known ages and latencies; raw retention long enough to compare with raw."""
    settings.DAC_METRICS_RAW_RETENTION_HOURS = 24 * 30
    ages = {"30m": (ago(minutes=30), 10, 5.0), "5h": (ago(hours=5), 20, 50.0), "3d": (ago(days=3), 40, 500.0), "10d": (ago(days=10), 80, 5000.0)}
    rows = []
    for ts, n, latency in ages.values():
        rows += [(ts + timedelta(seconds=i), "/api/v1/things/<int:id>/", latency + i) for i in range(n)]
    with tenant_context(org_a):
        put_requests(org_a.id, rows)
    return rows


def _summary(window, now=NOW):
    return usage_summary(usage_query(window=window, now=now, refresh=False))["requests"]


def test_windows_count_exactly_the_rows_inside_them(org_a, history):
    with tenant_context(org_a):
        assert metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        assert _summary("1h")["count"] == 10
        assert _summary("24h")["count"] == 30
        assert _summary("7d")["count"] == 70


def test_window_percentiles_equal_the_histogram_of_the_same_values(org_a, history):
    with tenant_context(org_a):
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        summary = _summary("24h")
    values = [latency for ts, _, latency in history if ts >= NOW - timedelta(hours=24)]
    counts = histogram.counts_of(values)
    for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        assert summary[key] == round(histogram.percentile(counts, q), 1)
    assert summary["mean_ms"] == round(sum(values) / len(values), 1)


def test_rollups_are_used_at_every_resolution(org_a, history):
    with tenant_context(org_a):
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        resolutions = set(RequestRollup.objects.values_list("resolution", flat=True))
        plan = window_plan(start=NOW - timedelta(days=7), now=NOW, rolled_until=RollupState.objects.get().rolled_until)
    assert resolutions == {MINUTE, HOUR, DAY}
    assert {r for r, _, _ in plan.ranges} == {DAY, HOUR, MINUTE}
    assert plan.ranges[0][0] == HOUR  # 7 days ago is older than the minutes kept: its whole hour
    assert plan.ranges[-1][0] == MINUTE  # the current hour so far
    covered = sorted((lo, hi) for _, lo, hi in plan.ranges)
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False)), "ranges must tile the window"


def test_the_plan_tiles_a_day_with_minutes_at_the_edges():
    rolled = NOW.replace(second=0)
    plan = window_plan(start=NOW - timedelta(hours=24), now=NOW, rolled_until=rolled)
    kinds = [r for r, _, _ in plan.ranges]
    assert kinds[0] == MINUTE and kinds[-1] == MINUTE and HOUR in kinds
    spans = sorted((lo, hi) for _, lo, hi in plan.ranges)
    assert spans[0][0] == plan.start and spans[-1][1] == rolled == plan.raw_from
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_raw_rows_newer_than_the_last_rollup_are_counted(org_a, history):
    with tenant_context(org_a):
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        put_requests(org_a.id, [(NOW - timedelta(seconds=5), "/x/", 1.0), (NOW - timedelta(seconds=1), "/x/", 2.0)])
        assert _summary("1h")["count"] == 12


def test_rolling_up_twice_does_not_double_count(org_a, history):
    with tenant_context(org_a):
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        metrics_rollup_org(org_id=org_a.id, now=NOW + timedelta(minutes=3), force=True)
        assert _summary("7d", NOW + timedelta(minutes=3))["count"] == 70
        # Hours and days are stored once complete: today's 30 rows live in minutes and hours.
        assert sum(RequestRollup.objects.filter(resolution=DAY).values_list("count", flat=True)) == 120
        assert sum(RequestRollup.objects.filter(resolution=HOUR).values_list("count", flat=True)) == 140


def test_a_row_flushed_late_is_counted_by_the_next_rollup(org_a, history):
    with tenant_context(org_a):
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        put_requests(org_a.id, [(NOW - timedelta(minutes=2), "/late/", 3.0)])  # arrives after the rollup
        later = NOW + timedelta(minutes=1)
        metrics_rollup_org(org_id=org_a.id, now=later, force=True)
        assert [r["route"] for r in usage_by_path(usage_query(window="1h", now=later, refresh=False))].count("/late/") == 1


def test_a_rollup_that_is_due_runs_on_read(org_a, history, settings):
    with tenant_context(org_a):
        assert not RollupState.objects.exists()
        usage_query(window="1h", now=NOW)
        state = RollupState.objects.get()
        assert state.rolled_until == NOW.replace(second=0) and state.updated_at == NOW
        usage_query(window="1h", now=NOW + timedelta(seconds=10))  # not due yet: unchanged
        assert RollupState.objects.get().updated_at == NOW
        usage_query(window="1h", now=NOW + timedelta(seconds=settings.DAC_METRICS_ROLLUP_SECONDS + 1))
        assert RollupState.objects.get().updated_at > NOW


def test_retention_prunes_raw_rows_and_old_buckets_but_windows_still_count(org_a, history, settings):
    settings.DAC_METRICS_RAW_RETENTION_HOURS = 2
    settings.DAC_METRICS_LATE_SECONDS = 60
    settings.DAC_METRICS_MINUTE_RETENTION_HOURS = 26
    settings.DAC_METRICS_HOUR_RETENTION_DAYS = 8
    with tenant_context(org_a):
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        assert RequestMetric.objects.count() == 10  # only the last 30 minutes' raw rows remain
        assert not RequestRollup.objects.filter(resolution=MINUTE, bucket__lt=NOW - timedelta(hours=26)).exists()
        assert not RequestRollup.objects.filter(bucket__lt=NOW - timedelta(days=8)).exists()  # the 10-day-old rows
        assert _summary("7d")["count"] == 70
        assert _summary("24h")["count"] == 30


def test_usage_numbers_per_provider_errors_and_time_steps(org_a):
    with tenant_context(org_a):
        put_calls(org_a.id, [
            (ago(minutes=10), "openai", "gpt-4o-mini", "ok", 900, 100, 200, 0.5),
            (ago(minutes=20), "openai", "gpt-4o-mini", "timeout", 30000, None, None, 0.0),
            (ago(hours=3), "perplexity", "sonar", "ok", 1500, 50, 60, 0.25),
        ])
        put_requests(org_a.id, [(ago(minutes=5), "/a/", 10, 429, "dac_quota"), (ago(minutes=6), "/a/", 10, 502, "timeout"), (ago(minutes=7), "/a/", 10)])
        metrics_rollup_org(org_id=org_a.id, now=NOW, force=True)
        query = usage_query(window="24h", now=NOW, refresh=False)
        providers = {p["provider"]: p for p in usage_by_provider(query)}
        assert providers["openai"]["count"] == 2 and providers["openai"]["errors"] == 1
        assert providers["openai"]["cost_usd"] == 0.5 and providers["perplexity"]["input_tokens"] == 50
        assert usage_errors(query) == {"requests": {"timeout": 1, "dac_quota": 1}, "provider_calls": {"timeout": 1}}
        series = usage_timeseries(query)
        assert series["step_seconds"] == 3600 and len(series["points"]) in (24, 25)
        assert sum(p["provider_calls"]["count"] for p in series["points"]) == 3
        assert sum(p["providers"].get("perplexity", {}).get("count", 0) for p in series["points"]) == 1
        assert usage_summary(usage_query(window="1h", now=NOW, refresh=False, filters={"provider": "perplexity"}))["provider_calls"]["count"] == 0


def test_metrics_rows_of_another_org_are_invisible_to_raw_sql(org_a, org_b):
    with tenant_context(org_b):
        put_requests(org_b.id, [(NOW, "/b/", 1.0)])
        metrics_rollup_org(org_id=org_b.id, now=NOW, force=True)
    with tenant_context(org_a), connection.cursor() as cursor:
        for table in ("metrics_requestmetric", "metrics_requestrollup", "metrics_rollupstate"):
            cursor.execute(f"SELECT count(*) FROM {table}")
            assert cursor.fetchone()[0] == 0, table


def test_rollup_metrics_command_rolls_up_every_org(org_a, org_b, capsys):
    with tenant_context(org_a):
        put_requests(org_a.id, [(datetime.now(UTC) - timedelta(minutes=3), "/a/", 1.0)])
        put_calls(org_a.id, [(datetime.now(UTC) - timedelta(minutes=3), "demo", "demo-1", "ok", 5, 1, 1)])
    with tenant_context(org_b):
        put_requests(org_b.id, [(datetime.now(UTC) - timedelta(minutes=3), "/b/", 1.0)])
    call_command("rollup_metrics")
    assert "Rolled up 2 org(s)" in capsys.readouterr().out
    with tenant_context(org_a):
        assert RequestRollup.objects.filter(resolution=MINUTE).count() == 1
        assert ProviderRollup.objects.filter(resolution=MINUTE).count() == 1
