"""A fixed latency histogram with log-spaced bounds, so percentiles come from merging counts.

Every rollup row stores how many latencies fell in each bucket; merging rows is adding counts,
and a percentile of any set of rows (any window, any path or provider) is read off the merged
counts. The work is bounded by the number of buckets, not by the number of requests.

Bounds are 20 per decade from 0.25 ms to 10 minutes: a bucket is ~12% wide, so a percentile
read off the histogram (linear interpolation inside the bucket, as Prometheus does) is within
~12% of the exact value, usually much closer. Bucket `i` holds values in
[BOUNDS[i-1], BOUNDS[i]) — the same rule as PostgreSQL's `width_bucket(x, bounds)` and
Python's `bisect_right`, so SQL and Python put a value in the same bucket.

Rows store the counts trimmed to their non-zero span: `offset` (first bucket index) and the
counts from there (`hist_offset`, `hist` columns), because most requests of one path fall in
a handful of neighbouring buckets.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

PER_DECADE = 20
LOWEST_MS = 0.25
HIGHEST_MS = 600_000.0


def _bounds() -> tuple[float, ...]:
    bounds = []
    k = 0
    while True:
        value = float(f"{LOWEST_MS * 10 ** (k / PER_DECADE):.4g}")
        bounds.append(value)
        if value >= HIGHEST_MS:
            return tuple(bounds)
        k += 1


BOUNDS: tuple[float, ...] = _bounds()
#: Buckets are 0..len(BOUNDS): one below the first bound, one at/above the last.
BUCKETS = len(BOUNDS) + 1


def bucket_index(ms: float) -> int:
    return bisect.bisect_right(BOUNDS, ms)


def bucket_range(index: int) -> tuple[float, float]:
    lower = 0.0 if index == 0 else BOUNDS[index - 1]
    upper = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1]
    return lower, upper


def counts_of(values: Iterable[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        index = bucket_index(value)
        counts[index] = counts.get(index, 0) + 1
    return counts


def merge(into: dict[int, int], other: Mapping[int, int]) -> dict[int, int]:
    for index, count in other.items():
        if count:
            into[index] = into.get(index, 0) + count
    return into


def trim(counts: Mapping[int, int]) -> tuple[int, list[int]]:
    """(offset, dense counts from offset to the last non-zero bucket)."""
    present = [i for i, c in counts.items() if c]
    if not present:
        return 0, []
    low, high = min(present), max(present)
    return low, [counts.get(i, 0) for i in range(low, high + 1)]


def untrim(offset: int, dense: Iterable[int]) -> dict[int, int]:
    return {offset + i: c for i, c in enumerate(dense) if c}


def percentile(counts: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of the values the counts describe, in ms; None if empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            lower, upper = bucket_range(index)
            if index >= len(BOUNDS):
                return upper  # above the last bound: report the bound, "at least this"
            fraction = (rank - seen) / count
            return lower + (upper - lower) * fraction
        seen += count
    return bucket_range(max(counts))[1]


def percentiles(counts: Mapping[int, int], qs: Iterable[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": _round(percentile(counts, q)) for q in qs}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
