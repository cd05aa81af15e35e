"""Provider faults, through a real uvicorn (the `asgi_server` fixture) to a fake OpenAI server
on loopback: a provider that hangs before answering, 5xx (JSON and an HTML gateway page),
a 200 whose body is garbage, a connection closed with no answer or in the middle of the body
or the stream, and a stream that stalls after its first token.

For each, on every surface that calls providers (threads API, OpenAI-compatible gateway, the
chat page's SSE): what the user sees is a clear error in that surface's shape and the
provider's category, within a bounded time; the exchange is saved whole (user message
complete, answer failed with its category and whatever text arrived, never left
'streaming'); a failed call gives its quota back; and the next message, with the provider
healthy again, is answered: nothing has to be restarted.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.test import Client
from django.utils.html import escape

from tenants.context import tenant_context
from tests.factories import api_token_for, fake_provider_keyed
from tests.fakes import Behaviour
from threads.models import Message, Thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

TIMEOUT = 0.6  # DAC_PROVIDER_TIMEOUT for these tests
RETRIES = 1
# One attempt, a retry, the backoff and DAC's own work: anything slower is a hang.
BOUNDED = (1 + RETRIES) * TIMEOUT + 3.0
GATEWAY_STATUS = {"timeout": 504, "unavailable": 503}


@pytest.fixture
def fake(org_a, settings):
    settings.DAC_PROVIDER_TIMEOUT = TIMEOUT
    settings.DAC_PROVIDER_RETRIES = RETRIES
    settings.DAC_PROVIDER_RETRY_BACKOFF = 0.01
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    with fake_provider_keyed(org_a) as server:
        yield server


@pytest.fixture
def api(asgi_server, org_a):
    token = api_token_for(org_a, "faults")
    with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as client:
        yield client


@pytest.fixture
def page(asgi_server, alice):
    """alice's browser on the chat page (session cookie, CSRF token)."""
    client = Client()
    client.force_login(alice)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": "a" * 32}
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=20,
                      headers={"X-CSRFToken": "a" * 32, "Referer": asgi_server.url}) as http:
        yield http


@pytest.fixture
def thread(org_a):
    with tenant_context(org_a):
        return Thread.objects.create(org=org_a, title="faults")


def _rows(org, thread) -> list[tuple]:
    with tenant_context(org):
        return list(Message.objects.filter(thread=thread).order_by("seq").values_list("role", "status", "error_category", "content"))


def _events(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines.get("data", "{}"))))
    return events


def _gateway_chunks(body: str) -> list:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]" for line in body.splitlines() if line.startswith("data: ")]


def _healthy_again(fake, api, thread, org) -> None:
    fake.behaviour = Behaviour(text="Back to normal.")
    started = time.monotonic()
    response = api.post(f"/api/v1/threads/{thread.pk}/messages/", json={"content": "are you there again?"})
    assert response.status_code == 201 and response.json()["content"] == "Back to normal.", response.text
    assert time.monotonic() - started < BOUNDED
    assert _rows(org, thread)[-2:] == [("user", "complete", "", "are you there again?"), ("assistant", "complete", "", "Back to normal.")]


# Faults before any text: the call is retried once (timeout/5xx), then fails with its category.
BEFORE_TEXT = {
    "hangs before answering": (Behaviour(error="timeout"), "timeout"),
    "5xx JSON error": (Behaviour(error="unavailable", status=500), "unavailable"),
    "502 HTML gateway page": (Behaviour(error="unavailable", status=502, html=True), "unavailable"),
    "200 with a garbage body": (Behaviour(garbage=True), "unavailable"),
    "connection closed without an answer": (Behaviour(disconnect=True), "unavailable"),
    "connection closed in the middle of the body": (Behaviour(drop_after=1), "unavailable"),
}


@pytest.mark.parametrize("fault", list(BEFORE_TEXT))
def test_a_failing_provider_gives_the_api_a_clear_502_and_saves_a_failed_answer(fault, fake, api, thread, org_a):
    behaviour, category = BEFORE_TEXT[fault]
    ok = api.post(f"/api/v1/threads/{thread.pk}/messages/", json={"content": "first, a working call"})
    assert ok.status_code == 201
    fake.reset()
    fake.behaviour = behaviour
    started = time.monotonic()
    response = api.post(f"/api/v1/threads/{thread.pk}/messages/", json={"content": "write a python function"})
    assert time.monotonic() - started < BOUNDED
    assert response.status_code == 502
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail"} and error["code"] == category
    assert "openai" in error["message"] and "Retry" in error["message"]
    assert len(fake.requests) == 1 + RETRIES  # retried once on the same provider
    # The failed call gave its request back to the daily quota.
    assert response.headers["X-RateLimit-Remaining-Requests"] == ok.headers["X-RateLimit-Remaining-Requests"]
    assert _rows(org_a, thread)[2:] == [("user", "complete", "", "write a python function"), ("assistant", "failed", category, "")]
    _healthy_again(fake, api, thread, org_a)


@pytest.mark.parametrize("fault", list(BEFORE_TEXT))
def test_a_failing_provider_gives_gateway_clients_an_openai_error(fault, fake, api, org_a):
    behaviour, category = BEFORE_TEXT[fault]
    fake.behaviour = behaviour
    started = time.monotonic()
    response = api.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "write a python function"}]})
    assert time.monotonic() - started < BOUNDED
    assert response.status_code == GATEWAY_STATUS[category]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == category and error["message"]
    # The same fault on a stream: the headers went out, so it ends with an error event and [DONE].
    fake.behaviour = behaviour
    with api.stream("POST", "/v1/chat/completions", json={"model": "auto", "stream": True, "messages": [{"role": "user", "content": "write a python function"}]}) as stream:
        body = stream.read().decode()
    chunks = _gateway_chunks(body)
    assert chunks[-1] == "[DONE]" and chunks[-2]["error"]["code"] == category
    fake.behaviour = Behaviour(text="fine")
    healthy = api.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "write a python function"}]})
    assert healthy.status_code == 200 and healthy.json()["choices"][0]["message"]["content"] == "fine"


# Faults after the first token: no retry (the user already saw text), what arrived is kept.
MID_STREAM = {
    "connection dropped mid-stream": (Behaviour(text="one two three four five", drop_after=2), "unavailable", "one two "),
    "hangs after the first token": (Behaviour(text="one two three four five", stall_after_first=60), "timeout", "one "),
}


@pytest.mark.parametrize("fault", list(MID_STREAM))
def test_a_stream_cut_mid_answer_keeps_what_arrived_and_says_it_was_cut_off(fault, fake, api, thread, org_a):
    behaviour, category, partial = MID_STREAM[fault]
    fake.behaviour = behaviour
    started = time.monotonic()
    with api.stream("POST", f"/api/v1/threads/{thread.pk}/messages/", json={"content": "tell me a story", "stream": True}) as stream:
        body = stream.read().decode()
    assert time.monotonic() - started < BOUNDED
    events = _events(body)
    assert "".join(data["text"] for name, data in events if name == "delta") == partial
    name, data = events[-1]
    assert name == "failed" and data["message"]["error_category"] == category and "cut off" in data["message"]["error_message"]
    assert data["message"]["status"] == "failed" and data["message"]["content"] == partial
    assert len(fake.requests) == 1  # text had reached the user: no retry, no fallback
    assert _rows(org_a, thread) == [("user", "complete", "", "tell me a story"), ("assistant", "failed", category, partial)]
    # The gateway's stream says the same in OpenAI's shape.
    fake.behaviour = behaviour
    with api.stream("POST", "/v1/chat/completions", json={"model": "auto", "stream": True, "messages": [{"role": "user", "content": "a story"}]}) as stream:
        chunks = _gateway_chunks(stream.read().decode())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if isinstance(c, dict) and c.get("choices"))
    assert text == partial and chunks[-2]["error"]["code"] == category and chunks[-1] == "[DONE]"
    _healthy_again(fake, api, thread, org_a)


@pytest.mark.parametrize("fault", ["hangs before answering", "200 with a garbage body", "hangs after the first token"])
def test_the_chat_page_shows_the_failure_in_the_conversation(fault, fake, page, thread, org_a):
    behaviour, category = BEFORE_TEXT[fault] if fault in BEFORE_TEXT else MID_STREAM[fault][:2]
    fake.behaviour = behaviour
    started = time.monotonic()
    response = page.post(f"/threads/{thread.pk}/messages/", data={"content": "hello there", "csrfmiddlewaretoken": "a" * 32},
                         headers={"Accept": "text/event-stream"})
    assert time.monotonic() - started < BOUNDED
    events = _events(response.text)
    assert events[0][0] == "start" and events[-1][0] == "failed"
    failed = events[-1][1]
    assert failed["category"] == category and "openai" in failed["error"]
    assert escape(failed["error"]) in failed["html"]  # the message is shown in place of the answer
    rows = _rows(org_a, thread)
    assert rows[0][:2] == ("user", "complete") and rows[1][:3] == ("assistant", "failed", category)
    # Reloading the page shows the failed answer with its message (it was saved, not lost).
    page_html = page.get(f"/threads/{thread.pk}/").text
    assert "hello there" in page_html and escape(failed["error"]) in page_html
    fake.behaviour = Behaviour(text="Working again.")
    again = page.post(f"/threads/{thread.pk}/messages/", data={"content": "retry", "csrfmiddlewaretoken": "a" * 32},
                      headers={"Accept": "text/event-stream"})
    assert _events(again.text)[-1][0] == "done"


def test_a_transient_fault_is_retried_and_the_user_never_sees_it(fake, api, thread, org_a):
    fake.enqueue(Behaviour(error="timeout"))
    response = api.post(f"/api/v1/threads/{thread.pk}/messages/", json={"content": "write a python function", "stream": False})
    assert response.status_code == 201 and response.json()["status"] == "complete"
    assert len(fake.requests) == 2
    assert [row[:2] for row in _rows(org_a, thread)] == [("user", "complete"), ("assistant", "complete")]


def test_a_client_that_goes_away_mid_stream_still_gets_the_whole_answer_saved(fake, api, thread, org_a):
    fake.behaviour = Behaviour(text="a b c d e f", chunks=6, chunk_gap=0.1)
    with api.stream("POST", f"/api/v1/threads/{thread.pk}/messages/", json={"content": "tell me a story", "stream": True}) as stream:
        for text in stream.iter_text():
            if "delta" in text:
                break  # the client goes away after the first piece
    deadline = time.monotonic() + 5
    while _rows(org_a, thread)[-1][1] == "streaming":
        assert time.monotonic() < deadline, "the answer was never finished"
        time.sleep(0.05)
    assert _rows(org_a, thread)[-1] == ("assistant", "complete", "", "a b c d e f")
