"""Daily limits per org and provider: stored here, enforced by the quota service."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from audit.services import Actor, audit_record
from dac.errors import ValidationFailed
from providers.adapters import PROVIDER_NAMES
from providers.models import MAX_REQUESTS_PER_DAY, MAX_TOKENS_PER_DAY, QuotaLimit


def _check(name: str, value, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ValidationFailed(f"{name} must be a whole number, not {str(value)[:40]!r}.", detail={name: "not_a_number"}) from None
    if value < 0:
        raise ValidationFailed(f"{name} cannot be negative.", detail={name: "negative"})
    if value > maximum:
        raise ValidationFailed(f"{name} of {value:,} is absurd: the most allowed is {maximum:,} per day.", detail={name: "too_large"})
    return value


def quota_limit_set(*, org_id: int, provider: str = "", requests_per_day=None, tokens_per_day=None, actor: Actor) -> QuotaLimit:
    """Set an org's daily limits for one provider ('' = every provider). None keeps a value."""
    if provider and provider not in PROVIDER_NAMES:
        raise ValidationFailed(f"Unknown provider {provider!r}; use one of {', '.join(PROVIDER_NAMES)}.", detail={"provider": "unknown"})
    requests_per_day = _check("requests_per_day", requests_per_day, MAX_REQUESTS_PER_DAY)
    tokens_per_day = _check("tokens_per_day", tokens_per_day, MAX_TOKENS_PER_DAY)
    limit, _ = QuotaLimit.objects.get_or_create(org_id=org_id, provider=provider)
    before = {"requests_per_day": limit.requests_per_day, "tokens_per_day": limit.tokens_per_day}
    if requests_per_day is not None:
        limit.requests_per_day = requests_per_day
    if tokens_per_day is not None:
        limit.tokens_per_day = tokens_per_day
    limit.updated_at = timezone.now()
    limit.save()
    audit_record(
        org_id=org_id,
        actor=actor,
        event="limits.changed",
        target=f"provider:{provider or '*'}",
        details={"before": before, "after": {"requests_per_day": limit.requests_per_day, "tokens_per_day": limit.tokens_per_day}},
    )
    return limit


def effective_limits(*, org_id: int, provider: str) -> tuple[int, int]:
    """(requests, tokens) per day: the provider's row, else the org-wide row, else settings."""
    rows = {row.provider: row for row in QuotaLimit.objects.filter(org_id=org_id, provider__in=[provider, ""])}
    requests = tokens = None
    for key in (provider, ""):
        row = rows.get(key)
        if row is not None:
            requests = requests if requests is not None else row.requests_per_day
            tokens = tokens if tokens is not None else row.tokens_per_day
    return (
        requests if requests is not None else settings.DAC_DEFAULT_REQUESTS_PER_DAY,
        tokens if tokens is not None else settings.DAC_DEFAULT_TOKENS_PER_DAY,
    )
