"""Reads for the provider settings: keys per provider, and who may use what."""

from __future__ import annotations

from dataclasses import dataclass, field

from providers.models import ProviderKey
from providers.services.keys import CONFIGURABLE_PROVIDERS
from tenants.models import Membership, UserAgentPermission

PROVIDER_LABELS = {
    "openai": "OpenAI",
    "perplexity": "Perplexity",
    "gemini": "Google Gemini",
    "openrouter": "OpenRouter",
    "openai_compatible": "OpenAI-compatible endpoint",
    "demo": "Demo (offline)",
}
PROVIDER_BLURBS = {
    "openai": "Code and structured output.",
    "perplexity": "Fresh facts from the web, with citations; factual questions.",
    "gemini": "Long conversations.",
    "openrouter": "Everything else: the default route.",
    "openai_compatible": "Ollama, vLLM, LM Studio or any proxy that speaks the OpenAI API.",
}


@dataclass
class ProviderSettings:
    name: str
    label: str
    blurb: str
    keys: list[ProviderKey] = field(default_factory=list)
    usage: object | None = None  # quota.Usage: today's requests and tokens against the limits

    @property
    def requests_percent(self) -> int:
        return _percent(self.usage.requests_used, self.usage.requests_limit) if self.usage else 0

    @property
    def tokens_percent(self) -> int:
        return _percent(self.usage.tokens_used, self.usage.tokens_limit) if self.usage else 0


    @property
    def active_key(self) -> ProviderKey | None:
        return next((key for key in self.keys if key.is_active), None)


def _percent(used: int, limit: int) -> int:
    return 100 if limit <= 0 else min(100, round(100 * used / limit))


def provider_settings_list(*, org_id: int | None = None) -> list[ProviderSettings]:
    """Every configurable provider with its keys, and today's usage when `org_id` is given."""
    by_provider = {name: ProviderSettings(name, PROVIDER_LABELS[name], PROVIDER_BLURBS.get(name, "")) for name in CONFIGURABLE_PROVIDERS}
    for key in ProviderKey.objects.order_by("-is_active", "-created_at"):
        if key.provider in by_provider:
            by_provider[key.provider].keys.append(key)
    if org_id is not None:
        from providers.services.quota import quota_usage

        for item in by_provider.values():
            item.usage = quota_usage(org_id=org_id, provider=item.name)
    return list(by_provider.values())


def provider_settings_get(*, provider: str, org_id: int | None = None) -> ProviderSettings:
    return next(item for item in provider_settings_list(org_id=org_id) if item.name == provider)


def provider_key_list():
    return ProviderKey.objects.order_by("provider", "-is_active", "-created_at")


@dataclass
class MemberPermissions:
    membership: Membership
    allowed: dict[str, bool]


def member_permissions_list() -> list[MemberPermissions]:
    denied = {(p.user_id, p.provider) for p in UserAgentPermission.objects.filter(allowed=False)}
    rows = []
    for membership in Membership.objects.select_related("user").order_by("created_at"):
        rows.append(
            MemberPermissions(membership, {name: (membership.user_id, name) not in denied for name in CONFIGURABLE_PROVIDERS})
        )
    return rows
