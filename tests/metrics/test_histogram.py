"""Percentile math on the fixed log-spaced histogram, against known data."""

import random

import pytest
from django.db import connection

from metrics import histogram


def _exact(values, q):
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


def test_bounds_are_log_spaced_and_cover_a_quarter_ms_to_ten_minutes():
    bounds = histogram.BOUNDS
    assert bounds[0] == 0.25 and bounds[-1] >= 600_000
    ratios = [b / a for a, b in zip(bounds, bounds[1:], strict=False)]
    assert all(1.10 < r < 1.14 for r in ratios)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_percentiles_of_known_data_are_within_one_bucket_of_exact(q):
    rng = random.Random(7)
    values = [rng.lognormvariate(4, 1) for _ in range(20_000)]
    estimate = histogram.percentile(histogram.counts_of(values), q)
    assert estimate == pytest.approx(_exact(values, q), rel=0.06)


def test_percentiles_of_uniform_one_to_a_thousand():
    counts = histogram.counts_of(range(1, 1001))
    assert histogram.percentile(counts, 0.5) == pytest.approx(500, rel=0.06)
    assert histogram.percentile(counts, 0.95) == pytest.approx(950, rel=0.06)
    assert histogram.percentile(counts, 0.99) == pytest.approx(990, rel=0.06)


def test_merging_histograms_equals_the_histogram_of_all_values():
    rng = random.Random(3)
    a = [rng.uniform(1, 50) for _ in range(500)]
    b = [rng.uniform(100, 3000) for _ in range(300)]
    merged = histogram.merge(histogram.counts_of(a), histogram.counts_of(b))
    assert merged == histogram.counts_of(a + b)
    for q in (0.5, 0.95, 0.99):
        assert histogram.percentile(merged, q) == histogram.percentile(histogram.counts_of(a + b), q)


def test_trim_keeps_only_the_nonzero_span_and_round_trips():
    counts = histogram.counts_of([5, 5, 6, 900])
    offset, dense = histogram.trim(counts)
    assert offset == min(counts) and dense[0] > 0 and dense[-1] > 0
    assert histogram.untrim(offset, dense) == counts
    assert histogram.trim({}) == (0, [])


def test_empty_histogram_has_no_percentile():
    assert histogram.percentile({}, 0.5) is None
    assert histogram.percentiles({}) == {"p50": None, "p95": None, "p99": None}


def test_values_beyond_the_last_bound_report_the_bound():
    assert histogram.percentile(histogram.counts_of([10_000_000]), 0.99) == histogram.BOUNDS[-1]


@pytest.mark.django_db
def test_postgres_width_bucket_puts_values_in_the_same_bucket_as_python():
    values = [0.0, 0.1, 0.25, 0.2500001, 1.0, 3.3, 99.99, 100.0, 12345.6, 599_999.0, 600_000.0, 9e9]
    values += list(histogram.BOUNDS[::7])
    with connection.cursor() as cursor:
        cursor.execute("SELECT width_bucket(v, %s::float8[]) FROM unnest(%s::float8[]) AS v", [list(histogram.BOUNDS), values])
        sql = [row[0] for row in cursor.fetchall()]
    assert sql == [histogram.bucket_index(v) for v in values]
