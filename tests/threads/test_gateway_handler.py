"""The gateway's ASGI handler (dac/asgi.py): Django's request handling without thread hops."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import SyncToAsync
from django.core import signals

from dac.asgi import gateway_application


def _call(path: str, *, method: str = "GET", headers: list | None = None, body: bytes = b"") -> tuple[int, dict, bytes]:
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": headers or [], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    asyncio.run(gateway_application(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def hops(monkeypatch):
    """Every sync_to_async call made meanwhile, by what it runs."""
    calls: list[str] = []
    original = SyncToAsync.__call__

    def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


def test_a_gateway_request_runs_djangos_request_signals_without_a_thread_hop(hops):
    seen = []

    def started(**kwargs):
        seen.append("started")

    def finished(**kwargs):
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, headers, body = _call("/v1/models")
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert status == 401 and b"invalid_api_key" in body
    assert "content-security-policy" in headers  # the gateway's middleware ran
    assert seen == ["started", "finished"]
    # The only hop left is Django logging the 4xx (get_response_async does that on the pool).
    assert hops == ["log_response"]


@pytest.mark.django_db(transaction=True)
def test_a_warm_gateway_call_makes_no_thread_hop_and_is_audited(fakes, token_a, org_a, hops):
    """Token, keys, routing and limits cached (as after any earlier call): the quota is reserved
    and settled on the event loop and the audit record written on its own connection."""
    from audit.models import AuditLog
    from tenants.context import tenant_context
    from tests.fakes import Behaviour

    fakes["openai"].behaviour = Behaviour(text="fine", input_tokens=3, output_tokens=2)
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    body = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    first = _call("/v1/chat/completions", method="POST", headers=headers, body=body)
    hops.clear()
    status, response_headers, content = _call("/v1/chat/completions", method="POST", headers=headers, body=body)
    assert first[0] == 200 and status == 200, content
    assert json.loads(content)["choices"][0]["message"]["content"] == "fine" and response_headers["x-dac-provider"] == "openai"
    assert hops == []
    with tenant_context(org_a):
        calls = AuditLog.objects.filter(event="provider.call").order_by("seq")
        assert [row.details["output_tokens"] for row in calls] == [2, 2]
