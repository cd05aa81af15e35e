from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.models import TenantModel

# Absurd limits are refused: a day has ~86,400 s, a gateway will not serve more than this.
MAX_REQUESTS_PER_DAY = 10_000_000
MAX_TOKENS_PER_DAY = 10_000_000_000


class QuotaLimit(TenantModel):
    """An org's daily limits, for one provider or (provider '') for all of them."""

    provider = models.CharField(max_length=32, blank=True, help_text="Empty: every provider.")
    requests_per_day = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(MAX_REQUESTS_PER_DAY)]
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(MAX_TOKENS_PER_DAY)]
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "provider"], name="quota_limit_unique")]

    def __str__(self) -> str:
        return f"{self.provider or 'all providers'}: {self.requests_per_day} req, {self.tokens_per_day} tok"


class ProviderKey(TenantModel):
    """An org's own key for a provider (BYOK), encrypted at rest and bound to the org.

    Several keys per provider may be stored; one is active (the one calls use). `masked` is
    all that is ever shown: the first 8 and last 4 characters.
    """

    provider = models.CharField(max_length=32)
    label = models.CharField(max_length=100, blank=True)
    ciphertext = models.TextField()
    masked = models.CharField(max_length=32)
    base_url = models.URLField(max_length=500, blank=True)
    default_model = models.CharField(max_length=200, blank=True, help_text="Model to use when routing names none (needed for OpenAI-compatible endpoints).")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey("tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "provider"], condition=models.Q(is_active=True), name="provider_key_one_active"
            )
        ]
        ordering = ["provider", "-is_active", "-created_at"]

    def __str__(self) -> str:
        return f"{self.provider} {self.masked}{' (active)' if self.is_active else ''}"


class QuotaCounter(TenantModel):
    """Today's quota counts for (org, provider) while Redis is unreachable: the fallback store.

    Redis is the quota store; these rows exist only during and shortly after an outage. `base_*`
    is what Redis held when the switch happened (the freshest view any worker had, by
    `base_version`), `requests` and `tokens` what was counted here since (signed: a call
    reserved on Redis and released here subtracts). When Redis is back, each row is carried
    into Redis once and marked `moved`; `overwrite` marks a reset made during the outage.
    See providers/services/quota.py and docs/quotas.md.
    """

    provider = models.CharField(max_length=32, help_text="A provider, or key_tests:HH for key tests.")
    day = models.DateField(help_text="UTC day.")
    base_requests = models.BigIntegerField(default=0)
    base_tokens = models.BigIntegerField(default=0)
    base_version = models.BigIntegerField(default=0, help_text="Redis' write count of the key when the base was seen.")
    requests = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    moved = models.BooleanField(default=False, help_text="Already carried into Redis.")
    overwrite = models.BooleanField(default=False, help_text="Reset during the outage: replaces Redis' count.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "provider", "day"], name="quota_counter_unique")]

    def __str__(self) -> str:
        return f"{self.provider} {self.day}: {self.base_requests + self.requests} req, {self.base_tokens + self.tokens} tok"
