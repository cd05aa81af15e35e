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
