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

    @property
    def active_key(self) -> ProviderKey | None:
        return next((key for key in self.keys if key.is_active), None)


def provider_settings_list() -> list[ProviderSettings]:
    by_provider = {name: ProviderSettings(name, PROVIDER_LABELS[name], PROVIDER_BLURBS.get(name, "")) for name in CONFIGURABLE_PROVIDERS}
    for key in ProviderKey.objects.order_by("-is_active", "-created_at"):
        if key.provider in by_provider:
            by_provider[key.provider].keys.append(key)
    return list(by_provider.values())


def provider_settings_get(*, provider: str) -> ProviderSettings:
    return next(item for item in provider_settings_list() if item.name == provider)


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
