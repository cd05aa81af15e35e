"""Stopping a DAC worker (SIGTERM on a deploy; `LiveServer.stop()` here, the same uvicorn
shutdown) does not cut the answers it is still producing for clients that went away: they
finish and are saved and audited before the worker exits, within DAC_SHUTDOWN_GRACE_SECONDS."""

from __future__ import annotations

import time

import httpx
import pytest

from audit.models import AuditLog
from tenants.context import tenant_context
from tests.factories import api_token_for, fake_provider_keyed
from tests.fakes import Behaviour
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake(org_a, settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    with fake_provider_keyed(org_a) as server:
        yield server


def _stop_after_the_client_left(server, org) -> tuple[Thread, float]:
    """A thread whose answer the client leaves after its first piece; then the worker is stopped.
    Returns the thread and how long stopping took."""
    with tenant_context(org):
        thread = Thread.objects.create(org=org, title="shutdown")
    token = api_token_for(org, "shutdown")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as api:
        with api.stream("POST", f"/api/v1/threads/{thread.pk}/messages/", json={"content": "tell me a story", "stream": True}) as stream:
            for text in stream.iter_text():
                if "delta" in text:
                    break
    started = time.monotonic()
    server.stop()
    assert not server.thread.is_alive(), "the worker did not exit"
    return thread, time.monotonic() - started


def test_an_answer_whose_client_left_is_finished_and_audited_before_the_worker_exits(fake, asgi_server, org_a):
    fake.behaviour = Behaviour(text="a b c d e f", chunks=6, chunk_gap=0.2)
    thread, stopping = _stop_after_the_client_left(asgi_server, org_a)
    assert stopping < 4, "the worker waited for more than the answer (the test grace is 5 s)"

    with tenant_context(org_a):
        answer = Message.objects.filter(thread=thread, role="assistant").get()
        calls = AuditLog.objects.filter(event="provider.call", details__message_id=answer.pk)
        assert (answer.status, answer.content) == ("complete", "a b c d e f")
        assert [call.details["outcome"] for call in calls] == ["ok"]


def test_an_answer_past_the_grace_period_is_left_to_the_server(fake, asgi_server, org_a, settings):
    settings.DAC_SHUTDOWN_GRACE_SECONDS = 0.3
    fake.behaviour = Behaviour(text="a b c d e f", chunks=6, chunk_gap=1.0)
    _, stopping = _stop_after_the_client_left(asgi_server, org_a)
    assert stopping < 3


def test_a_failure_while_waiting_is_reported_to_the_server_which_exits_all_the_same(monkeypatch):
    """uvicorn logs lifespan.shutdown.failed and goes on exiting; without an answer it would take
    DAC's lifespan for unsupported."""
    import asyncio

    from dac import asgi

    async def broken(timeout):
        raise RuntimeError("boom")

    monkeypatch.setattr(asgi, "answers_running_finish", broken)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(asgi.application({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "RuntimeError('boom')" in sent[1]["message"]
