"""BYOK provider keys: add or replace, activate, delete, test, decrypt for a call, rotate."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from dac.errors import NotFound, ValidationFailed
from dac.org_cache import PerOrgCache
from dac.storable_text import unstorable_reason
from providers import vault
from providers.adapters import PROVIDER_NAMES, ProviderError, get_adapter
from providers.models import ProviderKey
from providers.urlsafety import validate_base_url
from tenants.context import require_org_id

MAX_KEY_LENGTH = 512
# Printable ASCII, no spaces: what every provider's keys look like; catches pasted junk.
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{8,512}$")
CONFIGURABLE_PROVIDERS = tuple(name for name in PROVIDER_NAMES if name != "demo")


def _validate(provider: str, api_key: str, base_url: str) -> tuple[str, str]:
    if provider not in CONFIGURABLE_PROVIDERS:
        raise ValidationFailed(
            f"Unknown provider {provider!r}; use one of {', '.join(CONFIGURABLE_PROVIDERS)}.", detail={"provider": "unknown"}
        )
    api_key = (api_key or "").strip()
    if not api_key:
        raise ValidationFailed("The key is empty: paste the key your provider gave you.", detail={"api_key": "empty"})
    if len(api_key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"The key is too long ({MAX_KEY_LENGTH} characters at most).", detail={"api_key": "too_long"})
    if not _KEY_SHAPE.match(api_key):
        raise ValidationFailed(
            "That does not look like an API key: 8 or more visible characters, no spaces or line breaks.",
            detail={"api_key": "malformed"},
        )
    base_url = validate_base_url(base_url)
    if provider == "openai_compatible" and not base_url:
        raise ValidationFailed("An OpenAI-compatible endpoint needs a base_url (e.g. http://localhost:11434/v1).", detail={"base_url": "required"})
    return api_key, base_url


def _checked_model(name: str) -> str:
    name = (name or "").strip()
    if len(name) > 200:
        raise ValidationFailed("The default model name is too long (200 characters at most).", detail={"default_model": "too_long"})
    if reason := unstorable_reason("The default model name", name):
        raise ValidationFailed(reason, detail={"default_model": "unstorable"})
    return name


def provider_key_add(*, org_id: int, provider: str, api_key: str, label: str = "", base_url: str = "", default_model: str = "",
                     actor: Actor, created_by=None) -> ProviderKey:
    """Store a key as the provider's active key (the previous one stays, inactive). `default_model`:
    the model asked for when neither the request nor the routing rule names one (an
    OpenAI-compatible server has no model DAC could guess: Ollama's llama3.2, vLLM's served name)."""
    from tenants.services import ensure_not_demo

    ensure_not_demo(org_id, "store provider keys")
    api_key, base_url = _validate(provider, api_key, base_url)
    default_model = _checked_model(default_model)
    label = (label or "").strip()[:100]
    with transaction.atomic():
        ProviderKey.objects.filter(org_id=org_id, provider=provider, is_active=True).update(is_active=False)
        key = ProviderKey.objects.create(
            org_id=org_id,
            provider=provider,
            label=label,
            ciphertext=vault.encrypt(api_key, org_id=org_id),
            masked=vault.mask(api_key),
            base_url=base_url,
            default_model=default_model,
            is_active=True,
            created_by=created_by,
        )
        audit_record(
            org_id=org_id, actor=actor, event="provider_key.added", target=f"provider_key:{key.pk}",
            details={"provider": provider, "masked": key.masked, "label": label, "base_url": base_url, "default_model": default_model},
        )
    return key


def provider_key_get(*, key_id: int) -> ProviderKey:
    key = ProviderKey.objects.filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such provider key.")
    return key


def provider_key_activate(*, key: ProviderKey, actor: Actor) -> ProviderKey:
    with transaction.atomic():
        ProviderKey.objects.filter(org_id=key.org_id, provider=key.provider, is_active=True).exclude(pk=key.pk).update(is_active=False)
        key.is_active = True
        key.save(update_fields=["is_active"])
        audit_record(org_id=key.org_id, actor=actor, event="provider_key.activated", target=f"provider_key:{key.pk}", details={"provider": key.provider, "masked": key.masked})
    return key


def provider_key_delete(*, key: ProviderKey, actor: Actor) -> None:
    with transaction.atomic():
        audit_record(org_id=key.org_id, actor=actor, event="provider_key.deleted", target=f"provider_key:{key.pk}", details={"provider": key.provider, "masked": key.masked})
        key.delete()


# Keys in use, decrypted, for as long as an org's active keys are cached (DAC_SETTINGS_CACHE_SECONDS):
# decrypting on every provider call cost ~0.1 ms of CPU (docs/performance.md). Keyed by the
# ciphertext and the master keys, so a replaced, rotated or copied key is decrypted afresh;
# expired entries go at the next miss. Never logged, never returned to a client.
_plaintexts: dict[tuple[int, str, tuple[str, ...]], tuple[float, str]] = {}


def provider_key_plaintext(key: ProviderKey) -> str:
    """Decrypt for a provider call. Never log or return the result."""
    now = time.monotonic()
    entry = (key.org_id, key.ciphertext, tuple(settings.DAC_ENCRYPTION_KEYS))
    hit = _plaintexts.get(entry)
    if hit is not None and hit[0] > now:
        return hit[1]
    plaintext = vault.decrypt(key.ciphertext, org_id=key.org_id)
    for stale in [cached for cached, (expires, _) in _plaintexts.items() if expires <= now]:
        del _plaintexts[stale]
    _plaintexts[entry] = (now + settings.DAC_SETTINGS_CACHE_SECONDS, plaintext)
    return plaintext


_active_keys: PerOrgCache[dict[str, ProviderKey]] = PerOrgCache("active_keys", ProviderKey)


def active_keys() -> dict[str, ProviderKey]:
    """The current org's active key per provider (cached for a few seconds: dac/org_cache.py)."""
    load = lambda: {key.provider: key for key in ProviderKey.objects.filter(is_active=True)}  # noqa: E731
    return dict(_active_keys.get(require_org_id(), load))


def active_keys_cached(org_id: int) -> dict[str, ProviderKey] | None:
    """`active_keys` of an org if this process has them cached, else None (never queries)."""
    keys = _active_keys.cached(org_id)
    return None if keys is None else dict(keys)


@dataclass(frozen=True)
class KeyTestResult:
    ok: bool
    category: str
    message: str


async def provider_key_test(*, key: ProviderKey, actor: Actor, timeout: float = 10.0) -> KeyTestResult:
    """A cheap real call with the key (list models, or a one-token completion); stored and audited.

    Counted apart from chat quotas and capped per hour (raises QuotaExceeded past the cap)."""
    from providers.services.quota import key_test_reserve

    await sync_to_async(key_test_reserve)(org_id=key.org_id)
    try:
        plaintext = await sync_to_async(provider_key_plaintext)(key)
        base_url = await sync_to_async(validate_base_url)(key.base_url) if key.base_url else None
        adapter = get_adapter(key.provider, api_key=plaintext, base_url=base_url or None, check_addresses=bool(base_url))
        await adapter.check_key(timeout=timeout)
        result = KeyTestResult(True, "ok", "The provider accepted this key.")
    except ProviderError as exc:
        result = KeyTestResult(False, exc.category, _safe_message(exc))
    except vault.VaultError as exc:
        result = KeyTestResult(False, "vault", str(exc))
    except ValidationFailed as exc:
        result = KeyTestResult(False, "bad_request", exc.message)
    await sync_to_async(_store_test)(key, result, actor)
    return result


_CATEGORY_HINTS = {
    "auth": "The provider rejected this key: check it was copied whole and is not revoked.",
    "quota_exceeded": "The key is valid but its account has no credit or quota left.",
    "rate_limited": "The provider is rate limiting this key right now; try again in a minute.",
    "timeout": "The provider did not answer in time.",
    "unavailable": "The provider could not be reached or is failing.",
    "bad_request": "The provider refused the test request.",
    "content_filtered": "The provider filtered the test request.",
}


def _safe_message(exc: ProviderError) -> str:
    status = f" (HTTP {exc.status})" if exc.status else ""
    return _CATEGORY_HINTS.get(exc.category, "The test failed.") + status


def _store_test(key: ProviderKey, result: KeyTestResult, actor: Actor) -> None:
    now = timezone.now()
    ProviderKey.objects.filter(pk=key.pk).update(last_tested_at=now, last_test_ok=result.ok, last_test_message=result.message[:300])
    key.last_tested_at, key.last_test_ok, key.last_test_message = now, result.ok, result.message[:300]
    audit_record(
        org_id=key.org_id, actor=actor, event="provider_key.tested", target=f"provider_key:{key.pk}",
        details={"provider": key.provider, "masked": key.masked, "ok": result.ok, "category": result.category},
    )


@dataclass
class RotationReport:
    rotated: int = 0
    already_current: int = 0
    failed: list[int] | None = None


def provider_keys_rotate() -> RotationReport:
    """Re-encrypt every stored key under the newest master key (operator context required).

    Row by row in short transactions, so requests keep working; idempotent (keys already under
    the newest master key are left alone); a key no master key opens is reported, not skipped.
    """
    report = RotationReport(failed=[])
    for key_id, org_id in list(ProviderKey.objects.order_by("pk").values_list("pk", "org_id")):
        with transaction.atomic():
            key = ProviderKey.objects.select_for_update().filter(pk=key_id).first()
            if key is None:
                continue
            if vault.is_under_newest_key(key.ciphertext, org_id=org_id):
                report.already_current += 1
                continue
            try:
                key.ciphertext = vault.rotate(key.ciphertext, org_id=org_id)
            except vault.VaultError:
                report.failed.append(key_id)
                continue
            key.save(update_fields=["ciphertext"])
            audit_record(org_id=org_id, actor=Actor.system("manage.py rotate_keys"), event="provider_key.rotated", target=f"provider_key:{key_id}", details={"provider": key.provider, "masked": key.masked})
            report.rotated += 1
    return report
