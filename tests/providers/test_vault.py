"""Provider keys at rest: encrypted, bound to their org, rotatable, never shown."""

import io
import logging
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from audit.models import AuditLog
from audit.services import Actor
from dac.errors import ValidationFailed
from providers import vault
from providers.models import ProviderKey
from providers.services import keys
from providers.services.keys import provider_key_add, provider_key_plaintext, provider_key_test
from tenants.context import operator_context, tenant_context
from tests.fakes import Behaviour, FakeProvider

pytestmark = pytest.mark.django_db
SECRET = "sk-test-THIS-IS-THE-PLAINTEXT-KEY-0123456789abcdef"
OLD_KEY = "dGVzdC1tYXN0ZXIta2V5LW9uZS1mb3ItZGFjLXRlc3Q="
NEW_KEY = vault.generate_master_key()


def _add(org, provider="openai", key=SECRET, **kwargs):
    with tenant_context(org):
        return provider_key_add(org_id=org.id, provider=provider, api_key=key, actor=Actor.system(), **kwargs)


def test_key_is_encrypted_at_rest_and_masked(org_a):
    key = _add(org_a)
    assert SECRET not in key.ciphertext
    assert key.masked == "sk-test-…cdef"
    with tenant_context(org_a), connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext::text, masked FROM providers_providerkey")
        row = cursor.fetchone()
    assert SECRET not in " ".join(row)
    with tenant_context(org_a):
        assert provider_key_plaintext(ProviderKey.objects.get()) == SECRET


def test_ciphertext_copied_into_another_org_does_not_decrypt(org_a, org_b):
    key = _add(org_a)
    with tenant_context(org_b):
        ProviderKey.objects.create(org=org_b, provider="openai", ciphertext=key.ciphertext, masked="x", is_active=True)
        copied = ProviderKey.objects.get()
        with pytest.raises(vault.VaultError):
            provider_key_plaintext(copied)


def test_a_decrypted_key_is_kept_only_while_its_ciphertext_and_master_keys_stand(org_a, settings, monkeypatch):
    settings.DAC_ENCRYPTION_KEYS = [OLD_KEY]
    key = _add(org_a)
    calls = []
    real_decrypt = vault.decrypt
    monkeypatch.setattr(vault, "decrypt", lambda *args, **kwargs: calls.append(1) or real_decrypt(*args, **kwargs))
    assert provider_key_plaintext(key) == SECRET
    assert provider_key_plaintext(key) == SECRET
    assert len(calls) == 1  # the second call found it decrypted
    replaced = _add(org_a, key="sk-second-key-0123456789abcdefXYZ")
    assert provider_key_plaintext(replaced) == "sk-second-key-0123456789abcdefXYZ"
    settings.DAC_ENCRYPTION_KEYS = [NEW_KEY]  # the master key that opened it is gone
    with pytest.raises(vault.VaultError):
        provider_key_plaintext(key)
    settings.DAC_ENCRYPTION_KEYS = [OLD_KEY]
    calls.clear()
    provider_key_plaintext(key)
    assert calls == []
    later = time.monotonic() + settings.DAC_SETTINGS_CACHE_SECONDS + 1
    monkeypatch.setattr(keys.time, "monotonic", lambda: later)  # past its time: decrypted afresh
    provider_key_plaintext(key)
    assert len(calls) == 1


def test_adding_a_key_replaces_the_active_one(org_a):
    first = _add(org_a)
    second = _add(org_a, key="sk-second-key-0123456789abcdefXYZ")
    with tenant_context(org_a):
        assert list(ProviderKey.objects.filter(is_active=True).values_list("pk", flat=True)) == [second.pk]
        assert ProviderKey.objects.filter(pk=first.pk, is_active=False).exists()


@pytest.mark.parametrize(
    ("provider", "key", "base_url", "message"),
    [
        ("openai", "", "", "empty"),
        ("openai", "x" * 600, "", "too long"),
        ("openai", "sk bad key with spaces", "", "does not look like"),
        ("skynet", SECRET, "", "Unknown provider"),
        ("openai_compatible", SECRET, "", "needs a base_url"),
        ("openai_compatible", SECRET, "ftp://example.com", "http"),
        ("openai_compatible", SECRET, "http://127.0.0.1:11434/v1", "private"),
        ("openai_compatible", SECRET, "http://169.254.169.254/latest", "private"),
        ("openai_compatible", SECRET, "http://[::1]:8080/v1", "private"),
        ("openai_compatible", SECRET, "http://10.0.0.5/v1", "private"),
        ("openai_compatible", SECRET, "http://user:pw@example.com/v1", "credentials"),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_stored(org_a, provider, key, base_url, message):
    with pytest.raises(ValidationFailed, match=message):
        _add(org_a, provider=provider, key=key, base_url=base_url)
    with tenant_context(org_a):
        assert not ProviderKey.objects.exists()


@override_settings(DAC_ALLOW_PRIVATE_BASE_URLS=True)
def test_operator_can_allow_private_base_urls(org_a):
    key = _add(org_a, provider="openai_compatible", base_url="http://127.0.0.1:11434/v1/")
    assert key.base_url == "http://127.0.0.1:11434/v1"


def test_rotate_keys_re_encrypts_under_the_new_master_and_the_old_can_go(org_a, org_b, settings):
    settings.DAC_ENCRYPTION_KEYS = [OLD_KEY]
    _add(org_a)
    _add(org_b, provider="gemini", key="AIza-gemini-key-0123456789abcdefgh")
    settings.DAC_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "Rotated 2, already current 0, failed 0" in out.getvalue()
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "Rotated 0, already current 2, failed 0" in out.getvalue()
    settings.DAC_ENCRYPTION_KEYS = [NEW_KEY]
    with tenant_context(org_a):
        assert provider_key_plaintext(ProviderKey.objects.get()) == SECRET
    with tenant_context(org_b):
        assert provider_key_plaintext(ProviderKey.objects.get()).startswith("AIza")
    with operator_context(reason="test", audit=False):
        assert AuditLog.objects.filter(event="provider_key.rotated").count() == 2


def test_rotate_keys_reports_a_key_no_master_opens(org_a, settings):
    settings.DAC_ENCRYPTION_KEYS = [OLD_KEY]
    key = _add(org_a)
    settings.DAC_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(CommandError, match=str(key.pk)):
        call_command("rotate_keys", stdout=io.StringIO())


@override_settings(DAC_ALLOW_PRIVATE_BASE_URLS=True)
def test_key_test_makes_a_real_call_and_stores_the_result(org_a):
    from asgiref.sync import async_to_sync

    with FakeProvider("openai") as fake:
        key = _add(org_a, base_url=fake.base_url)
        with tenant_context(org_a):
            result = async_to_sync(provider_key_test)(key=key, actor=Actor.system())
        assert result.ok
        assert fake.requests[0].headers["authorization"] == f"Bearer {SECRET}"
        fake.enqueue(Behaviour(error="auth"))
        with tenant_context(org_a):
            result = async_to_sync(provider_key_test)(key=key, actor=Actor.system())
    assert not result.ok and result.category == "auth"
    assert SECRET not in result.message
    with tenant_context(org_a):
        stored = ProviderKey.objects.get()
        assert stored.last_test_ok is False and "rejected" in stored.last_test_message


@override_settings(DAC_ALLOW_PRIVATE_BASE_URLS=True)
def test_no_plaintext_key_in_logs_responses_pages_or_audit(org_a, alice_client, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = []
    with FakeProvider("openai") as fake:
        fake.behaviour = Behaviour(error="auth")
        response = alice_client.post("/api/v1/provider-keys/", {"provider": "openai", "api_key": SECRET, "base_url": fake.base_url}, content_type="application/json")
        assert response.status_code == 201
        key_id = response.json()["id"]
        bodies.append(response.content)
        bodies.append(alice_client.post(f"/api/v1/provider-keys/{key_id}/test/").content)
        bodies.append(alice_client.post(f"/settings/providers/keys/{key_id}/test/", headers={"HX-Request": "true"}).content)
        bodies.append(alice_client.get("/api/v1/provider-keys/").content)
        bodies.append(alice_client.get("/settings/providers/").content)
        bodies.append(alice_client.post("/settings/providers/openai/keys/", {"api_key": SECRET + " broken"}, headers={"HX-Request": "true"}).content)
        bodies.append(alice_client.post(f"/settings/providers/keys/{key_id}/delete/").content)
    with operator_context(reason="scan", audit=False):
        audit = " ".join(str(row.details) + row.target for row in AuditLog.objects.all())
    haystack = b" ".join(bodies).decode() + caplog.text + audit
    assert SECRET not in haystack
    assert SECRET[8:-4] not in haystack
