"""The send pipeline end to end: routing to each provider over real HTTP to fake servers,
retries, fallback, streaming, failures, seq under concurrency, bad input."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from django.test import Client

from audit.models import AuditLog
from audit.services import Actor
from providers.services.quota import estimate_tokens
from tenants.context import tenant_context
from tests.assertions import counted_without_usage, settled_answer, tokens_counted
from tests.fakes import Behaviour
from threads.models import Message, Thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning")]






@pytest.fixture
def api(token_a):
    return Client(headers={"Authorization": f"Bearer {token_a}"})


def _thread(org, n_messages: int = 0) -> Thread:
    with tenant_context(org):
        thread = Thread.objects.create(org=org, title="t")
        for seq in range(1, n_messages + 1):
            Message.objects.create(org=org, thread=thread, seq=seq, role="user" if seq % 2 else "assistant", content=f"earlier message {seq}")
        Thread.objects.filter(pk=thread.pk).update(next_seq=n_messages + 1)
    return thread


def _send(api, thread, content, **extra):
    return api.post(f"/api/v1/threads/{thread.pk}/messages/", {"content": content, **extra}, content_type="application/json")


def test_with_no_key_the_demo_provider_answers_and_says_so(api, org_a):
    thread = _thread(org_a)
    response = _send(api, thread, "hello there, what can you do")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["provider"] == "demo" and "demo" in body["content"].lower()
    assert body["routing"]["skipped"][0]["reason"] == "no key configured"
    with tenant_context(org_a):
        assert list(Message.objects.filter(thread=thread).values_list("seq", "role", "status")) == [(1, "user", "complete"), (2, "assistant", "complete")]
        assert Thread.objects.get(pk=thread.pk).title == "t"
    for header in ("X-RateLimit-Limit-Requests", "X-RateLimit-Remaining-Requests", "X-RateLimit-Limit-Tokens", "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset", "X-DAC-Overhead-Ms"):
        assert header in response.headers


@pytest.mark.parametrize(
    ("text", "count", "provider"),
    [
        ("whats the bitcoin price right now", 0, "perplexity"),
        ("write a python function that dedupes a list keeping order", 0, "openai"),
        ("ok and what do you think about that", 12, "gemini"),
        ("write me a short poem about autumn leaves", 0, "openrouter"),
        ("who wrote the novel Don Quixote", 0, "perplexity"),
    ],
)
def test_each_kind_of_message_reaches_its_provider(api, org_a, fakes, text, count, provider):
    thread = _thread(org_a, count)
    response = _send(api, thread, text)
    assert response.status_code == 201, response.content
    assert response.json()["provider"] == provider
    assert len(fakes[provider].requests) == 1
    assert sum(len(f.requests) for f in fakes.values()) == 1
    sent = fakes[provider].requests[0].json
    last = sent["contents"][-1]["parts"][0]["text"] if provider == "gemini" else sent["messages"][-1]["content"]
    assert last == text


def test_context_is_the_last_n_messages(api, org_a, fakes):
    thread = _thread(org_a, 8)
    _send(api, thread, "tell me a joke about cats")
    sent = fakes["openrouter"].requests[0].json["messages"]
    assert sent[0]["role"] == "system"
    assert [m["content"] for m in sent[1:-1]] == [f"earlier message {n}" for n in range(3, 9)]


def test_timeout_and_5xx_are_retried_on_the_same_provider(api, org_a, fakes):
    fakes["openrouter"].enqueue(Behaviour(error="unavailable"))
    thread = _thread(org_a)
    response = _send(api, thread, "brainstorm names for a bakery")
    assert response.status_code == 201
    assert response.json()["provider"] == "openrouter"
    assert len(fakes["openrouter"].requests) == 2


def test_a_failed_answers_latency_is_what_the_caller_waited_retries_included(api, org_a, fakes):
    """It was the last attempt's alone: 1-6 ms shown for an answer that took three tries over
    most of a second."""
    fakes["openrouter"].behaviour = Behaviour(error="unavailable")
    response = _send(api, _thread(org_a), "brainstorm names for a bakery", provider="openrouter")
    assert response.status_code == 502 and len(fakes["openrouter"].requests) == 3
    assert response.json()["error"]["detail"]["message"]["latency_ms"] >= 250  # the back-off between the tries, at least


def test_a_failing_provider_falls_back_to_the_next(api, org_a, fakes):
    fakes["perplexity"].behaviour = Behaviour(error="unavailable")
    thread = _thread(org_a)
    response = _send(api, thread, "what's the weather in lisbon today")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["provider"] != "perplexity"
    assert {"provider": "perplexity", "reason": "failed: unavailable"} in body["routing"]["skipped"]
    assert len(fakes["perplexity"].requests) == 3  # first try + 2 retries
    with tenant_context(org_a):
        calls = list(AuditLog.objects.filter(event="provider.call").order_by("seq"))
    assert [row.details["outcome"] for row in calls[:3]] == ["unavailable"] * 3 and calls[-1].details["outcome"] == "ok"
    # One request asked three times, then another (another provider and model): two hashes.
    assert len({row.request_hash for row in calls[:3]}) == 1 and calls[-1].request_hash != calls[0].request_hash


def test_auth_failure_moves_on_without_retrying(api, org_a, fakes):
    fakes["openrouter"].behaviour = Behaviour(error="auth")
    response = _send(api, _thread(org_a), "give me some advice on a job interview")
    assert response.status_code == 201
    assert len(fakes["openrouter"].requests) == 1


def test_every_provider_failing_saves_a_failed_answer_with_its_category(api, org_a, fakes):
    for fake in fakes.values():
        fake.behaviour = Behaviour(error="auth")
    thread = _thread(org_a)
    response = _send(api, thread, "hi")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "auth"
    with tenant_context(org_a):
        failed = Message.objects.get(thread=thread, role="assistant")
    assert failed.status == "failed" and failed.error_category == "auth"


def test_explicit_provider_overrides_the_rules(api, org_a, fakes):
    response = _send(api, _thread(org_a), "what's the weather in lisbon today", provider="gemini")
    assert response.json()["provider"] == "gemini"
    assert response.json()["routing"]["rule"] == "explicit"


def test_explicit_provider_without_a_key_is_400(api, org_a):
    response = _send(api, _thread(org_a), "hi", provider="openai")
    assert response.status_code == 400 and "no key" in response.json()["error"]["message"]


def test_member_not_permitted_is_skipped(org_a, bob, fakes):
    from tenants.services import agent_permission_set

    with tenant_context(org_a):
        agent_permission_set(org_id=org_a.id, user=bob, provider="openrouter", allowed=False, actor=Actor.system())
    client = Client()
    client.force_login(bob)
    response = _send(client, _thread(org_a), "write a limerick about a llama")
    assert response.status_code == 201
    assert response.json()["provider"] != "openrouter"
    assert {"provider": "openrouter", "reason": "you are not permitted to use it"} in response.json()["routing"]["skipped"]


@pytest.mark.parametrize(
    ("content", "status"),
    [("", 400), ("   \n ", 400), ("x" * 32_001, 400)],
)
def test_bad_messages_are_refused_and_nothing_is_written(api, org_a, content, status):
    thread = _thread(org_a)
    response = _send(api, thread, content)
    assert response.status_code == status and response.json()["error"]["message"]
    with tenant_context(org_a):
        assert not Message.objects.filter(thread=thread).exists()


_PROSE = "Thought: I should look it up.\nObservation: it is sunny."
_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}


def test_a_thread_message_takes_the_answer_shaping_fields_the_gateway_takes(api, org_a, fakes):
    """The threads API took content, provider, model, max_tokens and temperature only: stop,
    response_format, the sampling fields and reasoning_effort were dropped without a word."""
    fakes["openrouter"].behaviour = Behaviour(text=_PROSE)
    thread = _thread(org_a)
    response = _send(api, thread, "think aloud", provider="openrouter", model="openai/gpt-5", stop=["\nObservation:"],
                     top_p=0.9, seed=7, presence_penalty=0.5, frequency_penalty=-0.25, reasoning_effort="low",
                     logit_bias={"50256": -100})
    assert response.status_code == 201, response.content
    assert response.json()["content"] == "Thought: I should look it up."
    sent = fakes["openrouter"].requests[0].json
    assert sent["stop"] == ["\nObservation:"] and sent["reasoning"] == {"effort": "low"}
    assert (sent["top_p"], sent["seed"], sent["presence_penalty"], sent["frequency_penalty"], sent["logit_bias"]) == (
        0.9, 7, 0.5, -0.25, {"50256": -100})
    with tenant_context(org_a):
        assert Message.objects.get(thread=thread, role="assistant").content == "Thought: I should look it up."


def test_a_thread_message_asking_for_json_of_a_schema_is_answered_and_kept_as_text(api, org_a, fakes):
    fakes["openai"].behaviour = Behaviour(text='{"city": "Lisbon"}')
    thread = _thread(org_a)
    response_format = {"type": "json_schema", "json_schema": {"name": "place", "schema": _SCHEMA}}
    response = _send(api, thread, "where is the tower of Belem", provider="openai", response_format=response_format)
    assert response.status_code == 201, response.content
    assert json.loads(response.json()["content"]) == {"city": "Lisbon"}
    format_sent = fakes["openai"].requests[0].json["response_format"]
    assert format_sent["type"] == "json_schema" and format_sent["json_schema"]["schema"] == _SCHEMA


@pytest.mark.parametrize(("extra", "field", "says"), [
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "up to 4"),
    ({"stop": ""}, "stop", "non-empty"),
    ({"response_format": {"type": "regex"}}, "response_format", "json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "response_format", "name"),
    ({"top_p": 1.5}, "top_p", "from 0 to 1"),
    ({"top_p": "0.5"}, "top_p", "from 0 to 1"),
    ({"seed": 2**64}, "seed", "64 bits"),
    ({"presence_penalty": 3}, "presence_penalty", "from -2 to 2"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort", "valid choice"),
    ({"logit_bias": {"word": 1}}, "logit_bias", "token ids"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "thread keeps text"),
], ids=["five-stops", "empty-stop", "regex-format", "schema-without-name", "top_p-over-1", "top_p-text", "seed-too-big",
        "penalty-over-2", "unknown-effort", "bias-word", "tools"])
def test_an_answer_shaping_field_a_thread_cannot_take_is_a_400_naming_it_and_nothing_is_written(api, org_a, fakes, extra, field, says):
    thread = _thread(org_a)
    response = _send(api, thread, "hello", provider="openrouter", **extra)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["detail"] and says in error["message"], error
    assert not fakes["openrouter"].requests
    with tenant_context(org_a):
        assert not Message.objects.filter(thread=thread).exists()


def test_unknown_archived_and_foreign_threads(api, org_a, org_b):
    assert _send(api, type("T", (), {"pk": 999999})(), "hi").status_code == 404
    foreign = _thread(org_b)
    assert _send(api, foreign, "hi").status_code == 404
    archived = _thread(org_a)
    with tenant_context(org_a):
        Thread.objects.filter(pk=archived.pk).update(archived=True)
    response = _send(api, archived, "hi")
    assert response.status_code == 409 and "archived" in response.json()["error"]["message"]
    with tenant_context(org_b):
        assert not Message.objects.exists()


def test_seq_has_no_gaps_or_duplicates_under_concurrent_sends(token_a, org_a):
    thread = _thread(org_a)
    results = []

    def send(i):
        client = Client(headers={"Authorization": f"Bearer {token_a}"})
        results.append(_send(client, thread, f"message {i}").status_code)

    workers = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == [201] * 8
    with tenant_context(org_a):
        seqs = sorted(Message.objects.filter(thread=thread).values_list("seq", flat=True))
    assert seqs == list(range(1, 17))


def _sse_events(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
    return events


def test_streaming_delivers_deltas_before_the_answer_is_done(asgi_server, org_a, token_a, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="one two three four five six", chunk_gap=0.15)
    thread = _thread(org_a)
    arrivals = []
    with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {token_a}"}, timeout=20) as client:
        with client.stream("POST", f"/api/v1/threads/{thread.pk}/messages/", json={"content": "chat with me", "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "x-ratelimit-remaining-requests" in response.headers
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    arrivals.append(time.monotonic())
    events = _sse_events(lines)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and names.count("delta") >= 6
    assert "".join(data["text"] for name, data in events if name == "delta") == "one two three four five six"
    assert arrivals[-1] - arrivals[1] > 0.5  # spread out: streamed, not buffered
    assert events[-1][1]["message"]["content"] == "one two three four five six"


def test_client_disconnect_mid_answer_still_saves_the_whole_answer(asgi_server, org_a, token_a, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="alpha beta gamma delta epsilon zeta", chunk_gap=0.2)
    thread = _thread(org_a)
    with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {token_a}"}, timeout=20) as client:
        with client.stream("POST", f"/api/v1/threads/{thread.pk}/messages/", json={"content": "chat with me", "stream": True}) as response:
            for line in response.iter_lines():
                if line.startswith("event: delta"):
                    break  # the reader goes away after the first token
    answer = settled_answer(org_a, thread)
    assert answer.status == "complete"
    assert answer.content == "alpha beta gamma delta epsilon zeta"


def test_failure_after_partial_output_saves_what_arrived(asgi_server, org_a, token_a, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="first second third fourth", drop_after=2)
    thread = _thread(org_a)
    response = httpx.post(
        f"{asgi_server.url}/api/v1/threads/{thread.pk}/messages/", json={"content": "chat with me", "stream": True},
        headers={"Authorization": f"Bearer {token_a}"}, timeout=20,
    )
    assert "event: failed" in response.text
    with tenant_context(org_a):
        answer = Message.objects.get(thread=thread, role="assistant")
    assert answer.status == "failed" and answer.content.startswith("first") and answer.error_category == "unavailable"
    assert len(fakes["openrouter"].requests) == 1  # no retry once text reached the user
    # The call counts the prompt and what arrived, not the reservation's estimate (prompt + max_tokens).
    sent = fakes["openrouter"].requests[0].json["messages"]
    assert tokens_counted(org_a, "openrouter") == counted_without_usage(sent, answer.content) < estimate_tokens(sent)


def test_no_transaction_is_held_during_a_provider_call(api, org_a, fakes):
    from django.db import connections

    fakes["openrouter"].behaviour = Behaviour(delay=1.0)
    thread = _thread(org_a)
    done = threading.Event()
    threading.Thread(target=lambda: (_send(api, thread, "chat please"), done.set())).start()
    time.sleep(0.6)
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'")
        idle_in_transaction = cursor.fetchone()[0]
    done.wait(10)
    assert idle_in_transaction == 0
    assert fakes["openrouter"].requests  # the call was really in flight while we looked


def _stream_pressing_stop(url: str, token: str, user, thread, *, at: str, pause: float = 0.0) -> tuple[list[str], float]:
    """Stream a thread message through the API and press Stop on the page, once, at the first line
    starting with `at` (after `pause` seconds). The stream's lines, and the seconds from Stop to
    its end."""
    client = Client()
    client.force_login(user)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=20) as http:
        with http.stream("POST", f"/api/v1/threads/{thread.pk}/messages/", json={"content": "chat with me", "stream": True}) as response:
            lines, stopped_at = [], None
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith(at) and stopped_at is None:
                    time.sleep(pause)
                    stopped_at = time.monotonic()
                    start = json.loads(next(x for x in lines if x.startswith("data:"))[5:])  # the answer's id
                    assert client.post(f"/threads/{thread.pk}/messages/{start['message_id']}/stop/").status_code == 204
    return lines, time.monotonic() - stopped_at


def test_stop_keeps_what_arrived_as_the_answer(asgi_server, org_a, token_a, alice, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="one two three four five six seven eight", chunk_gap=0.25)
    thread = _thread(org_a)
    lines, _ = _stream_pressing_stop(asgi_server.url, token_a, alice, thread, at="event: delta")
    events = _sse_events(lines)
    assert events[-1][0] == "done", lines
    with tenant_context(org_a):
        answer = Message.objects.get(thread=thread, role="assistant")
    assert answer.status == "complete" and answer.error_message == "Stopped.", lines
    assert answer.content and answer.content != "one two three four five six seven eight", lines
    # Stop does not charge a full-length answer: the prompt and the text that arrived count.
    sent = fakes["openrouter"].requests[0].json["messages"]
    assert tokens_counted(org_a, "openrouter") == counted_without_usage(sent, answer.content) < estimate_tokens(sent)


def test_stop_before_the_first_byte_takes_effect_at_once(asgi_server, org_a, token_a, alice, fakes):
    """Stop did nothing until the provider sent its first piece: with a provider slow to answer
    (a reasoning model thinking), the page showed "Stopping…" for as long as it took."""
    fakes["openrouter"].behaviour = Behaviour(text="late answer", delay=6)
    thread = _thread(org_a)
    # At the start event, once the provider has had the request half a second and sent nothing.
    lines, after_stop = _stream_pressing_stop(asgi_server.url, token_a, alice, thread, at="data:", pause=0.5)
    assert _sse_events(lines)[-1][0] == "done", lines
    assert after_stop < 3, after_stop  # not the provider's 6 s
    with tenant_context(org_a):
        answer = Message.objects.get(thread=thread, role="assistant")
    assert (answer.status, answer.content, answer.error_message) == ("complete", "", "Stopped.")


def _post_and_leave(url: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    """Send a POST and close the connection before anything of the response is read."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    head = "".join(f"{name}: {value}\r\n" for name, value in {**headers, "Content-Length": str(len(body))}.items())
    with socket.create_connection((where.hostname, where.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\n{head}\r\n".encode() + body)
        time.sleep(0.15)  # the request is read and the view is at work


def _answer_settled(org, thread, provider: str) -> tuple[str, str, int]:
    answer = settled_answer(org, thread)
    return answer.status, answer.content, tokens_counted(org, provider)


def test_an_api_stream_whose_client_left_before_its_body_still_answers_and_settles(asgi_server, org_a, token_a, fakes, monkeypatch):
    """The answer started with the response's body: a client gone before it (here while the view
    was building the response) left the thread's answer 'streaming' and the reservation
    (prompt + 1,024 tokens) unsettled until the stale sweep."""
    import threads.apis

    made = threads.apis.StreamingHttpResponse

    def slow_response(*args, **kwargs):
        time.sleep(0.6)  # the client leaves meanwhile
        return made(*args, **kwargs)

    monkeypatch.setattr(threads.apis, "StreamingHttpResponse", slow_response)
    fakes["openrouter"].behaviour = Behaviour(text="saved all the same", input_tokens=7, output_tokens=3)
    thread = _thread(org_a)
    body = json.dumps({"content": "chat with me", "stream": True, "provider": "openrouter"}).encode()
    _post_and_leave(asgi_server.url, f"/api/v1/threads/{thread.pk}/messages/", body,
                    {"Authorization": f"Bearer {token_a}", "Content-Type": "application/json"})
    assert _answer_settled(org_a, thread, "openrouter") == ("complete", "saved all the same", 10)


def test_a_chat_page_stream_whose_page_left_before_its_body_still_answers_and_settles(asgi_server, alice, org_a, fakes, monkeypatch):
    """The same on the chat page, whose body renders the user's message before it reads the answer."""
    import threads.views

    rendered = threads.views._message_html

    def slow_html(*args, **kwargs):
        time.sleep(0.6)
        return rendered(*args, **kwargs)

    monkeypatch.setattr(threads.views, "_message_html", slow_html)
    fakes["openrouter"].behaviour = Behaviour(text="kept for the page", input_tokens=5, output_tokens=4)
    thread = _thread(org_a)
    client = Client()
    client.force_login(alice)
    body = f"content=hello&provider=openrouter&csrfmiddlewaretoken={'a' * 32}".encode()
    _post_and_leave(asgi_server.url, f"/threads/{thread.pk}/messages/", body, {
        "Cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={'a' * 32}",
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/event-stream",
        "X-CSRFToken": "a" * 32, "Referer": asgi_server.url})
    assert _answer_settled(org_a, thread, "openrouter") == ("complete", "kept for the page", 9)
