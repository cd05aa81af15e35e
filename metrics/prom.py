"""Prometheus metrics of this process, and the exposition for `/metrics`.

Labels stay bounded: the route is the resolved URL pattern (or `<unmatched>`), the method one
of a fixed set, the provider one of the adapters; no org and no model label (unbounded).
Per-org numbers live in the database rollups and the usage pages.

Several worker processes: set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by the
workers of one machine (cleared before they start) and every worker's `/metrics` reports the
sum over all of them; without it, each worker reports only itself (docs/observability.md).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
PROVIDER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

REQUEST_LATENCY = Histogram(
    "dac_http_request_duration_seconds", "Time to produce the response (headers), per route.",
    ["method", "route"], buckets=REQUEST_BUCKETS,
)
REQUESTS = Counter("dac_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
ERRORS = Counter(
    "dac_errors_total", "Errors by class: the seven provider categories and DAC's own dac_*.",
    ["source", "error_class"],
)
PROVIDER_LATENCY = Histogram(
    "dac_provider_call_duration_seconds", "Duration of provider calls (success or failure).",
    ["provider"], buckets=PROVIDER_BUCKETS,
)
PROVIDER_FIRST_TOKEN = Histogram(
    "dac_provider_first_token_seconds", "Time to the first streamed token.", ["provider"], buckets=PROVIDER_BUCKETS,
)
PROVIDER_CALLS = Counter("dac_provider_calls_total", "Provider calls by outcome.", ["provider", "outcome"])
PROVIDER_TOKENS = Counter("dac_provider_tokens_total", "Tokens reported by providers.", ["provider", "direction"])
PROVIDER_COST = Counter("dac_provider_cost_usd_total", "Estimated cost of provider calls (USD).", ["provider"])
OVERHEAD = Histogram(
    "dac_overhead_seconds", "Time DAC added to a gateway request beyond the provider call.", buckets=OVERHEAD_BUCKETS,
)
FLUSH_SECONDS = Histogram(
    "dac_metrics_flush_seconds", "Time to write one batch of metric rows.", buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)
ROWS_DROPPED = Counter("dac_metrics_rows_dropped_total", "Metric rows dropped (buffer full or write failed).")
BUFFERED = Gauge("dac_metrics_buffered_rows", "Metric rows waiting in this process's buffer.", multiprocess_mode="livesum")


class QuotaStoreCollector:
    """The quota store's state, read at scrape time from `providers.services.quota` if present.

    The quota module belongs to the providers app; it may not exist (then nothing is exported)
    and its `quota_store_state()` may return a name ("redis", "postgres"), a bool or number, or
    a dict of those (today: {"backend", "degraded", "since", "last_error"}). The backend name
    becomes `dac_quota_store_info{backend="redis"} 1`, numbers and bools `dac_quota_store_<key>`
    gauges, datetimes `dac_quota_store_<key>_timestamp_seconds`.
    """

    def collect(self):
        state_fn = _quota_state_fn()
        if state_fn is None:
            return
        try:
            state = state_fn()
        except Exception as exc:  # noqa: BLE001 - a broken store must not break the scrape
            logger.warning("metrics: quota_store_state() failed: %s", exc)
            yield GaugeMetricFamily("dac_quota_store_up", "Whether the quota store state could be read.", value=0)
            return
        yield GaugeMetricFamily("dac_quota_store_up", "Whether the quota store state could be read.", value=1)
        if not isinstance(state, dict):
            state = {"state": state}
        info: dict[str, str] = {}
        for key, value in state.items():
            name = "".join(c if c.isalnum() else "_" for c in str(key)).lower()
            if isinstance(value, bool | int | float):
                yield GaugeMetricFamily(f"dac_quota_store_{name}", f"Quota store: {key}.", value=float(value))
            elif isinstance(value, datetime):
                yield GaugeMetricFamily(f"dac_quota_store_{name}_timestamp_seconds", f"Quota store: {key}.", value=value.timestamp())
            elif isinstance(value, str) and name in _INFO_KEYS:
                info[name] = value[:64]
            # Free text (last_error …) is left out: a label per distinct message would not stay bounded.
        if info:
            family = GaugeMetricFamily("dac_quota_store_info", "Quota store: which backend is in use.", labels=sorted(info))
            family.add_metric([info[k] for k in sorted(info)], 1)
            yield family


_INFO_KEYS = frozenset({"backend", "store", "state", "mode"})


def _quota_state_fn():
    try:
        from providers.services import quota
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - present but broken: say so in the log, export nothing
        logger.exception("metrics: providers.services.quota failed to import")
        return None
    return getattr(quota, "quota_store_state", None)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition() -> tuple[bytes, str]:
    from metrics.buffer import get_buffer

    BUFFERED.set(len(get_buffer()))
    registry = _registry()
    body = generate_latest(registry)
    quota_registry = CollectorRegistry()
    quota_registry.register(QuotaStoreCollector())
    return body + generate_latest(quota_registry), CONTENT_TYPE_LATEST
