"""Metrics tables: raw rows (kept for a retention period) and rollups (what pages and APIs read).

Raw rows arrive in batches from the in-process buffer (metrics.buffer). `metrics_rollup_org`
turns them into per-minute and per-hour rollups holding counts, sums and a latency histogram
(metrics.histogram), so answering "p95 per path over 7 days" reads a few hundred rollup rows
however many requests were made. Every table is tenant-owned: RLS forced, scoped manager.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from metrics import histogram
from tenants.models import TenantModel

MINUTE = 60
HOUR = 3600
DAY = 86400


class Resolution(models.IntegerChoices):
    MINUTE = MINUTE, "minute"
    HOUR = HOUR, "hour"
    DAY = DAY, "day"


class RequestMetric(TenantModel):
    """One HTTP request that ran for an org (requests with no org only reach Prometheus)."""

    ts = models.DateTimeField()
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=200, help_text="The resolved URL pattern, not the raw path.")
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    error_class = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["org", "ts"], name="metrics_req_org_ts_idx"),
            BrinIndex(fields=["ts"], name="metrics_req_ts_brin"),
        ]


class ProviderCallMetric(TenantModel):
    """One call to a provider (a retry or a fallback is its own call)."""

    ts = models.DateTimeField()
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=32, help_text='"ok" or a provider error category.')
    latency_ms = models.FloatField()
    first_token_ms = models.FloatField(null=True, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    streamed = models.BooleanField(default=False)
    cost_usd = models.FloatField(default=0.0, help_text="Estimated from settings.DAC_MODEL_PRICES when recorded.")

    class Meta:
        indexes = [
            models.Index(fields=["org", "ts"], name="metrics_call_org_ts_idx"),
            BrinIndex(fields=["ts"], name="metrics_call_ts_brin"),
        ]


class RollupBase(TenantModel):
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    bucket = models.DateTimeField(help_text="Start of the minute, hour or day (UTC).")
    count = models.BigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    hist_offset = models.SmallIntegerField(default=0)
    hist = ArrayField(models.BigIntegerField(), default=list, help_text="Latency bucket counts from hist_offset on.")

    class Meta:
        abstract = True

    def latency_counts(self) -> dict[int, int]:
        return histogram.untrim(self.hist_offset, self.hist)

    def percentile(self, q: float) -> float | None:
        return histogram.percentile(self.latency_counts(), q)


class RequestRollup(RollupBase):
    route = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    error_class = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "resolution", "bucket", "route", "method", "error_class"], name="metrics_req_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["org", "resolution", "bucket"], name="metrics_req_rollup_idx")]
        ordering = ["-bucket"]

    def __str__(self) -> str:
        return f"{self.method} {self.route} @ {self.bucket:%Y-%m-%d %H:%M}"


class ProviderRollup(RollupBase):
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=32)
    streamed_count = models.BigIntegerField(default=0)
    first_token_count = models.BigIntegerField(default=0)
    first_token_sum_ms = models.FloatField(default=0.0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "resolution", "bucket", "provider", "model", "outcome"], name="metrics_call_rollup_unique"
            )
        ]
        indexes = [models.Index(fields=["org", "resolution", "bucket"], name="metrics_call_rollup_idx")]
        ordering = ["-bucket"]

    def __str__(self) -> str:
        return f"{self.provider} {self.model} @ {self.bucket:%Y-%m-%d %H:%M}"


class RollupState(TenantModel):
    """How far an org's raw rows have been rolled up: rollups cover [.., rolled_until)."""

    rolled_until = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org"], name="metrics_rollup_state_unique")]
