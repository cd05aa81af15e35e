"""The gateway's ASGI handling (dac/asgi.py): Django's request handling without thread hops, and
`POST /v1/chat/completions` on its fast path (dac/gateway_fast_path.py), which must answer exactly
as Django's gateway handler does."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import SyncToAsync
from django.core import signals

from dac.asgi import application, gateway_application


def _call(path: str, *, method: str = "GET", headers: list | None = None, body: bytes = b"", app=gateway_application,
          scheme: str = "http", sent: list | None = None) -> tuple[int, dict, bytes]:
    return asyncio.run(_acall(path, method=method, headers=headers, body=body, app=app, scheme=scheme, sent=sent))


async def _acall(path: str, *, method: str = "GET", headers: list | None = None, body: bytes = b"", app=gateway_application,
                 scheme: str = "http", sent: list | None = None) -> tuple[int, dict, bytes]:
    """The response's status, headers and body; `sent` (if given) gets every ASGI message sent."""
    sent = [] if sent is None else sent
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": scheme,
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": headers or [], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
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
@pytest.mark.parametrize("app", [gateway_application, application], ids=["django-handler", "fast-path"])
def test_a_warm_gateway_call_makes_no_thread_hop_and_is_audited(fakes, token_a, org_a, hops, app):
    """Token, keys, routing and limits cached (as after any earlier call): the quota is reserved
    and settled on the event loop and the audit record written on its own connection."""
    from audit.models import AuditLog
    from tenants.context import tenant_context
    from tests.fakes import Behaviour

    fakes["openai"].behaviour = Behaviour(text="fine", input_tokens=3, output_tokens=2)
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    body = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    first = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=app)
    hops.clear()
    status, response_headers, content = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=app)
    assert first[0] == 200 and status == 200, content
    assert json.loads(content)["choices"][0]["message"]["content"] == "fine" and response_headers["x-dac-provider"] == "openai"
    assert hops == []
    with tenant_context(org_a):
        calls = AuditLog.objects.filter(event="provider.call").order_by("seq")
        assert [row.details["output_tokens"] for row in calls] == [2, 2]


def _stream_in_one_packet(fakes, token_a, pieces: int) -> tuple[bytes, list[int]]:
    """A gateway stream whose provider sends `pieces` pieces in one packet: the body, and how many
    SSE events each write carried."""
    from dac.asgi import gateway_fast_path
    from tests.fakes import Behaviour

    fakes["openai"].behaviour = Behaviour(text=" ".join(f"w{i}" for i in range(pieces)), chunks=pieces, one_packet=True)
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    body = b'{"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    sent = []
    status, _, content = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=gateway_fast_path, sent=sent)
    assert status == 200, content
    writes = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    return content, [write.count(b"data: ") for write in writes]


@pytest.mark.django_db(transaction=True)
def test_stream_pieces_that_arrive_together_go_out_in_one_write_the_first_alone(fakes, token_a):
    """A provider whose 12 pieces arrive in one packet: the first piece is sent on its own (the
    client's first token does not wait for the rest), the others together, not one write each
    (15 writes before: the role, 12 pieces, the end, [DONE]; now the role, the first piece, the
    others, the end once the call is recorded)."""
    content, events_per_write = _stream_in_one_packet(fakes, token_a, 12)
    events = [json.loads(line[6:]) for line in content.decode().splitlines() if line.startswith("data: {")]
    pieces = [e["choices"][0]["delta"].get("content") for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert "".join(pieces) == " ".join(f"w{i}" for i in range(12)) and content.endswith(b"data: [DONE]\n\n")
    assert events_per_write == [1, 1, 11, 2]


@pytest.mark.django_db(transaction=True)
def test_a_write_carries_at_most_event_batch_max_pieces(fakes, token_a):
    """300 pieces sent in one packet go out as the first alone, the rest in writes of at most
    EVENT_BATCH_MAX, then the end. How many the reader finds queued at once depends on how the
    socket hands the ~45 kB over (one read: 256 and 43; two: 256, 10 and 33 was seen)."""
    from threads.services.handle import EVENT_BATCH_MAX

    _, events_per_write = _stream_in_one_packet(fakes, token_a, 300)
    middle = events_per_write[2:-1]
    assert events_per_write[:2] == [1, 1] and events_per_write[-1] == 2, events_per_write
    assert sum(middle) == 299 and max(middle) <= EVENT_BATCH_MAX and len(middle) < 10, events_per_write


def test_a_batch_takes_at_most_event_batch_max_events_and_the_end_alone():
    """What the reader finds queued, in batches: 300 pieces and the end as 256, 44, then the end."""
    from threads.services.handle import EVENT_BATCH_MAX, Delta, Finished, SendHandle

    async def batches() -> list[list]:
        handle = SendHandle(caller=None, options=None, plan=None, keys={}, candidate_index=0, reservation=None, messages=[],
                            thread_id=None, user_message_id=None, assistant_message_id=None, started=0.0, prepare_ms=0.0,
                            usage_headers={})
        handle.task, handle.queue = asyncio.get_running_loop().create_future(), asyncio.Queue()  # no answer task: the queue is filled here
        for i in range(300):
            handle.queue.put_nowait(Delta(f"w{i}"))
        handle.queue.put_nowait(Finished(None))
        return [batch async for batch in handle.event_batches()]

    sizes = [[type(event).__name__ for event in batch] for batch in asyncio.run(batches())]
    assert [len(batch) for batch in sizes] == [EVENT_BATCH_MAX, 300 - EVENT_BATCH_MAX, 1]
    assert sizes[-1] == ["Finished"] and "Finished" not in sizes[0] + sizes[1]


@pytest.mark.django_db(transaction=True)
def test_the_audited_request_hash_is_that_of_the_request_sent(fakes, token_a, org_a):
    """Taken while the provider works, it is still the hash of exactly what was asked."""
    from audit.models import AuditLog
    from audit.services import sha256_hex
    from dac.asgi import gateway_fast_path
    from tenants.context import tenant_context
    from tests.fakes import Behaviour

    fakes["openai"].behaviour = Behaviour(text="fine", input_tokens=3, output_tokens=2)
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    body = b'{"model": "openai/gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hash me"}]}'
    status, _, content = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=gateway_fast_path)
    assert status == 200, content
    sent = fakes["openai"].requests[-1].json
    asked = {"provider": "openai", "model": "gpt-4o-mini", "messages": sent["messages"], "max_tokens": 50, "temperature": None}
    with tenant_context(org_a):
        call = AuditLog.objects.get(event="provider.call")
    assert call.request_hash == sha256_hex(json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    assert call.response_hash == sha256_hex("fine")


@pytest.mark.django_db(transaction=True)
def test_the_fast_path_records_each_request_once_sent_or_not(fakes, token_a, monkeypatch):
    """A plain answer's request metrics are recorded after it is sent, once, even when the
    client is gone by then (the send fails); a stream's before its body, once."""
    from dac.asgi import gateway_fast_path
    from metrics import middleware
    from tests.fakes import Behaviour

    fakes["openai"].behaviour = Behaviour(text="fine", input_tokens=3, output_tokens=2)
    recorded = []
    monkeypatch.setattr(middleware, "request_record", lambda **row: recorded.append(row))
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    plain = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    stream = b'{"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    assert _call("/v1/chat/completions", method="POST", headers=headers, body=plain, app=gateway_fast_path)[0] == 200
    assert _call("/v1/chat/completions", method="POST", headers=headers, body=stream, app=gateway_fast_path)[0] == 200

    async def gone(message):
        raise OSError("the client went away")

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": plain, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)

    asyncio.run(gateway_fast_path(scope, receive, gone))
    assert [(row["route"], row["status"]) for row in recorded] == [("/v1/chat/completions", 200)] * 3
    assert all(row["latency_ms"] > 0 for row in recorded)


@pytest.mark.django_db(transaction=True)
def test_an_answer_that_cannot_be_recorded_is_withheld_though_its_response_was_ready(fakes, token_a, org_a, monkeypatch):
    """The plain answer's response is built while its record is written; the write fails (the
    database went away): the caller gets the 503 that says so, not the answer, and the call is
    measured once though its bookkeeping is done again once the database is back."""
    from django.db import OperationalError

    from audit.models import AuditLog
    from dac.asgi import gateway_fast_path
    from dac.db.loop_connection import LoopConnection
    from tenants.context import tenant_context
    from tests.fakes import Behaviour
    from threads.services import handle, record

    fakes["openai"].behaviour = Behaviour(text="never seen", input_tokens=3, output_tokens=2)
    failed = []
    original = LoopConnection.fetchone

    async def failing_twice(self, tenant, sql, params):  # the batch, then its append alone
        if "dac_audit_append" in sql and len(failed) < 2:
            failed.append(sql)
            raise OperationalError("the database went away")
        return await original(self, tenant, sql, params)

    measured = []
    monkeypatch.setattr(LoopConnection, "fetchone", failing_twice)
    monkeypatch.setattr(record, "provider_call_record", lambda **metrics: measured.append(metrics))
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    body = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'

    async def scenario():
        reply = await _acall("/v1/chat/completions", method="POST", headers=headers, body=body, app=gateway_fast_path)
        await asyncio.gather(*handle._RUNNING)  # the failure recorded once the database is back
        return reply

    status, _, content = asyncio.run(scenario())
    assert status == 503 and json.loads(content)["error"]["code"] == "unrecorded", content
    assert b"never seen" not in content and len(failed) == 2
    assert [metrics["outcome"] for metrics in measured] == ["ok"]
    with tenant_context(org_a):
        decision = AuditLog.objects.get(event="routing.decision")
    assert decision.details["outcome"] == "failed"


# --- the fast path answers as Django's gateway handler does ------------------------------------

# Differ from one answer to the next whoever serves it; Content-Length is the fast path's own (Django
# leaves the framing to the server, which then chunks).
VOLATILE_HEADERS = {
    "x-dac-overhead-ms", "content-length", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset",
}
PARITY_CASES = {
    "answer": b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
    "stream": b'{"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}',
    "not json": b"{nope",
    "unknown model": b'{"model": "nobody/x", "messages": [{"role": "user", "content": "hi"}]}',
    "too large": b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"x" * 2_000_100 + b'"}]}',
}


def _comparable(body: bytes) -> bytes:
    """The body without what is new in every answer (completion id, creation time)."""
    import re

    return re.sub(rb'"(id|created)": ?("[^"]*"|\d+)', rb'"\1": _', body)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_the_fast_path_answers_with_the_status_headers_and_body_of_djangos_handler(fakes, token_a, case):
    from dac.asgi import gateway_fast_path
    from tests.fakes import Behaviour

    fakes["openai"].behaviour = Behaviour(text="same words", input_tokens=3, output_tokens=2)
    headers = [(b"authorization", f"Bearer {token_a}".encode()), (b"content-type", b"application/json")]
    body = PARITY_CASES[case]
    django_status, django_headers, django_body = _call("/v1/chat/completions", method="POST", headers=headers, body=body)
    fast_status, fast_headers, fast_body = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=gateway_fast_path)

    assert fast_status == django_status, (fast_body, django_body)
    assert {k: v for k, v in fast_headers.items() if k not in VOLATILE_HEADERS} == {
        k: v for k, v in django_headers.items() if k not in VOLATILE_HEADERS and k != "transfer-encoding"
    }
    assert _comparable(fast_body) == _comparable(django_body)
    if not django_headers.get("content-type", "").startswith("text/event-stream"):
        assert fast_headers["content-length"] == str(len(fast_body))


@pytest.mark.django_db(transaction=True)
def test_a_request_without_a_token_gets_the_same_401_and_cors_headers_for_an_allowed_origin(settings):
    from dac.asgi import gateway_fast_path

    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    headers = [(b"origin", b"https://app.example"), (b"content-type", b"application/json")]
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
    django = _call("/v1/chat/completions", method="POST", headers=headers, body=body)
    fast = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=gateway_fast_path)
    assert fast[0] == django[0] == 401
    assert fast[1]["access-control-allow-origin"] == django[1]["access-control-allow-origin"] == "https://app.example"
    assert fast[2] == django[2]


@pytest.mark.django_db(transaction=True)
def test_an_exception_in_the_view_is_a_logged_openai_500(token_a, monkeypatch, caplog):
    from dac.asgi import gateway_fast_path
    from threads import gateway

    async def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway, "message_send", broken)
    headers = [(b"authorization", f"Bearer {token_a}".encode())]
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
    status, headers, content = _call("/v1/chat/completions", method="POST", headers=headers, body=body, app=gateway_fast_path)
    assert status == 500 and json.loads(content)["error"]["type"] == "server_error", content
    assert "a bug" not in content.decode()
    assert any(record.name == "django.request" and record.exc_info for record in caplog.records)


def test_the_https_redirect_is_kept(settings):
    from dac.gateway_fast_path import GatewayFastPath

    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["dac.example"]
    status, headers, _ = _call("/v1/chat/completions", method="POST", headers=[(b"host", b"dac.example")], body=b"{}",
                               app=GatewayFastPath())
    assert status == 301 and headers["location"] == "https://dac.example/v1/chat/completions"
    assert _call("/v1/chat/completions", method="POST", headers=[(b"host", b"dac.example")], body=b"{}",
                 app=GatewayFastPath(), scheme="https")[0] == 401


def test_a_middleware_the_fast_path_does_not_know_stops_it_from_loading(settings):
    from django.core.exceptions import ImproperlyConfigured

    from dac.gateway_fast_path import GatewayFastPath

    settings.DAC_GATEWAY_MIDDLEWARE = [*settings.DAC_GATEWAY_MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    with pytest.raises(ImproperlyConfigured, match="DAC_GATEWAY_MIDDLEWARE"):
        GatewayFastPath()


def test_only_posts_to_chat_completions_take_the_fast_path():
    from dac.asgi import gateway_fast_path

    assert gateway_fast_path.handles({"path": "/v1/chat/completions", "method": "POST"})
    assert not gateway_fast_path.handles({"path": "/v1/chat/completions", "method": "OPTIONS"})
    assert not gateway_fast_path.handles({"path": "/v1/models", "method": "POST"})


@pytest.mark.django_db(transaction=True)
def test_each_fast_path_request_is_counted_under_its_route(token_a):
    from prometheus_client import REGISTRY

    from dac.asgi import gateway_fast_path

    labels = {"method": "POST", "route": "/v1/chat/completions", "status": "400"}
    before = REGISTRY.get_sample_value("dac_http_requests_total", labels) or 0
    headers = [(b"authorization", f"Bearer {token_a}".encode())]
    assert _call("/v1/chat/completions", method="POST", headers=headers, body=b"{nope", app=gateway_fast_path)[0] == 400
    assert REGISTRY.get_sample_value("dac_http_requests_total", labels) == before + 1


def test_a_client_gone_before_its_body_gets_no_answer():
    from dac.asgi import gateway_fast_path

    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    asyncio.run(gateway_fast_path(scope, receive, send))
    assert sent == []


def _streamed(unwound: list):
    """A streaming response whose iterator sends one part, then waits for more that never come."""
    from django.http import StreamingHttpResponse

    async def parts():
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()
        finally:
            unwound.append(True)

    return StreamingHttpResponse(parts(), content_type="text/event-stream")


def test_a_client_leaving_mid_stream_cancels_the_sending_and_the_view_sees_it():
    from dac.gateway_fast_path import _client_left, _send_response

    sent, unwound = [], []
    first_part = asyncio.Event()

    async def send(message):
        sent.append(message)
        if message.get("body"):
            first_part.set()

    async def receive():
        await first_part.wait()
        return {"type": "http.disconnect"}

    async def scenario():
        leaving = asyncio.ensure_future(_client_left(receive))
        await asyncio.wait_for(_send_response(_streamed(unwound), send, leaving), 5)
        return list(unwound)  # as _send_response returned

    assert asyncio.run(scenario()) == [True]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize("broken", ["send", "receive"])
def test_a_failing_send_or_receive_during_a_stream_is_raised_not_taken_for_a_disconnect(broken):
    from dac.gateway_fast_path import _client_left, _send_response

    unwound = []

    async def send(message):
        if broken == "send" and message["type"] == "http.response.body":
            raise OSError("connection reset")

    async def receive():
        if broken == "receive":
            raise RuntimeError("the server broke")
        await asyncio.Event().wait()

    async def scenario():
        leaving = asyncio.ensure_future(_client_left(receive))
        with pytest.raises(OSError if broken == "send" else RuntimeError):
            await asyncio.wait_for(_send_response(_streamed(unwound), send, leaving), 5)
        return list(unwound)

    # A failed receive cancels the sending (the iterator sees it); a failed send leaves the
    # iterator suspended, for the response's close() (threads/gateway.py, _AnswerEvents).
    assert asyncio.run(scenario()) == ([] if broken == "send" else [True])
