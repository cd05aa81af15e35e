"""A fake LLM provider over real HTTP, for tests, end-to-end runs and benchmarks.

    from tests.fakes import Behaviour, FakeProvider

    with FakeProvider("openai") as fake:              # 127.0.0.1, a free port, own thread + loop
        fake.enqueue(Behaviour(error="rate_limited", retry_after=7))   # next request only
        fake.behaviour = Behaviour(chunks=5, chunk_gap=0.05)           # every request after that
        adapter = get_adapter("openai", api_key="sk-test", base_url=fake.base_url)
        ...
        fake.requests[-1].json["model"]               # what the adapter sent

Standalone (a default success behaviour, for manual runs and benchmarks):

    python -m tests.fakes.server --provider openai --port 9100 [--delay-ms 0] [--chunks 8] [--chunk-gap-ms 20]

The server is asyncio-based (one thread, one event loop), so thousands of concurrent streams cost
little. It speaks HTTP/1.1 with keep-alive, answers JSON with Content-Length and streams with
Transfer-Encoding: chunked, one HTTP chunk per SSE event, flushed as it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http
import socket
import threading
import time
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from .behaviour import Behaviour, RecordedRequest, Reply, StreamPlan
from .wire_chat import ChatWire, Route
from .wire_gemini import GeminiWire

PROVIDERS = ("openai", "openai_compatible", "openrouter", "perplexity", "gemini")
_HANG = 3600.0  # "forever", as far as any test is concerned


class FakeProvider:
    """A fake `provider` ("openai", "openai_compatible", "openrouter", "perplexity" or "gemini").

    behaviour   the default Behaviour, used when the queue is empty (settable at any time)
    api_key     when set, requests with another key get the provider's auth error
    """

    def __init__(self, provider: str = "openai", *, behaviour: Behaviour | None = None,
                 api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
        self.provider = provider
        self.wire: ChatWire | GeminiWire = GeminiWire() if provider == "gemini" else ChatWire(provider)
        self.behaviour = behaviour or Behaviour()
        self.api_key = api_key
        self.host, self.port = host, port
        self.connections_opened = 0  # TCP connections accepted: shows whether clients reuse them
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._startup_error: BaseException | None = None

    # ---- public API -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What get_adapter(base_url=...) expects: /v1 for OpenAI-style, /v1beta for Gemini,
        the bare host for Perplexity."""
        return f"http://{self.host}:{self.port}{self.wire.prefix}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Queue one-shot behaviours, used by the next requests in order, before the default."""
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the fake has received no request")
            return self._requests[-1]

    def reset(self) -> None:
        """Forget recorded requests and queued behaviours."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            time.sleep(0.005)
        return self.requests

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.provider}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the server -------------------------------------------------------------------------

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - re-raised by start()
            self._startup_error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, self.port, backlog=4096, reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections_opened += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small events
        try:
            while True:
                request = await _read_request(reader)
                if request is None or not await self._respond(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away or sent nonsense
        except asyncio.CancelledError:
            pass  # the fake is shutting down; ending quietly keeps asyncio from logging it
        finally:
            self._tasks.discard(task)
            writer.close()

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.behaviour

    async def _respond(self, req: RecordedRequest, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False closes the connection."""
        with self._lock:
            self._requests.append(req)
        b = self._next_behaviour()
        route = self.wire.route(req)
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.disconnect:
            return False
        if route.kind == "unknown":
            return await _send(writer, self.wire.not_found(req))
        if self.api_key is not None and self.wire.key(req) != self.api_key:
            reply = self.wire.error("auth", b.but(retry_after=None), req, route)
            assert reply is not None
            return await _send(writer, reply)
        refusal = self.wire.refusal(req) if route.kind == "chat" else None
        if refusal is not None:  # a field the provider would refuse: its own 400
            reply = self.wire.error("bad_request", b.but(message=refusal, retry_after=None, status=None), req, route)
            assert reply is not None
            return await _send(writer, reply)
        if b.garbage:
            # Truncated JSON in an SSE event, or bytes that are not JSON at all.
            garbage = b'data: {"choices": [{"delta": {"content": "Hel\n\n' if route.stream else b"\x00<html>{oops"
            kind = "text/event-stream" if route.stream else "application/json"
            return await _send(writer, Reply(200, garbage, kind))
        blocked = b.error == "content_filtered" and self.wire.filtered_is_200
        if b.error and not blocked:
            reply = self.wire.error(b.error, b, req, route)
            if reply is None:  # this provider sends nothing for a timeout: hang
                await asyncio.sleep(_HANG)
                return False
            return await _send(writer, reply)
        if route.kind == "models":
            return await _send(writer, self.wire.models())
        if route.stream:
            return await self._stream(writer, self.wire.stream(b, req, route, blocked=blocked), b, req, route)
        reply = self.wire.success(b, req, route, blocked=blocked)
        if b.drop_after is not None:  # headers promise a length the body never reaches
            await _send(writer, reply, body=reply.body[: len(reply.body) // 2])
            return False
        return await _send(writer, reply)

    async def _stream(self, writer: asyncio.StreamWriter, plan: StreamPlan, b: Behaviour,
                      req: RecordedRequest, route: Route) -> bool:
        if b.one_packet:
            packet = _OnePacket(writer)
            try:
                return await self._stream(packet, plan, b.but(one_packet=False), req, route)
            finally:
                await packet.send()
        content_type = "application/json; charset=UTF-8" if plan.array else plan.content_type
        writer.write(_head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked",
                                 "Cache-Control": "no-cache"}))
        await writer.drain()
        first, sent_text, failed = True, 0, False
        for kind, event in plan.events:
            if kind != "prelude" and b.midstream_error and sent_text == b.error_after:
                for error_event in self.wire.midstream_error(b.midstream_error, b, req, route):
                    await _chunk(writer, _unframe(error_event, plan.array, first))
                    first = False
                failed = True
                break
            if kind == "text" and b.drop_after is not None and sent_text == b.drop_after:
                return False  # closing now leaves the chunked body unterminated
            if kind == "text" and sent_text and b.chunk_gap:  # the gap sits between text pieces
                await asyncio.sleep(b.chunk_gap)
            await _chunk(writer, _unframe(event, plan.array, first))
            first = False
            if kind == "text":
                sent_text += 1
                if sent_text == 1 and b.stall_after_first:
                    await asyncio.sleep(b.stall_after_first)
        if b.midstream_error and not failed:  # error_after was past the last piece: fail at the end
            for error_event in self.wire.midstream_error(b.midstream_error, b, req, route):
                await _chunk(writer, _unframe(error_event, plan.array, first))
                first = False
        if plan.array:
            await _chunk(writer, b"]" if not first else b"[]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    url = urlsplit(target)
    return RecordedRequest(method, url.path, dict(parse_qsl(url.query)), headers, body, time.monotonic())


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(writer: asyncio.StreamWriter, reply: Reply, body: bytes | None = None) -> bool:
    headers = {"Content-Type": reply.content_type, "Content-Length": str(len(reply.body)), **reply.headers}
    writer.write(_head(reply.status, headers) + (reply.body if body is None else body))
    await writer.drain()
    return True


class _OnePacket:
    """A stream writer that keeps what is written and sends it all at once (Behaviour.one_packet)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer, self.parts = writer, []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    async def drain(self) -> None:
        pass

    async def send(self) -> None:
        self.writer.write(b"".join(self.parts))
        await self.writer.drain()


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()


def _unframe(event: bytes, array: bool, first: bool) -> bytes:
    """Gemini without alt=sse streams `[{...},\\r\\n{...}]` instead of SSE events."""
    if not array or event.startswith(b":"):
        return b"" if array else event
    payload = event.strip()
    payload = payload.removeprefix(b"data: ")
    return (b"[" if first else b",\r\n") + payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.server",
                                     description="Run a fake LLM provider until interrupted.")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before the response headers")
    parser.add_argument("--chunks", type=int, default=None, help="stream the answer in this many pieces")
    parser.add_argument("--chunk-gap-ms", type=float, default=0.0, help="pause between stream events")
    parser.add_argument("--text", default=None, help="the answer text (default: a fixed sentence)")
    parser.add_argument("--api-key", default=None, help="reject other keys with the provider's auth error")
    args = parser.parse_args(argv)
    behaviour = Behaviour(delay=args.delay_ms / 1000.0, chunks=args.chunks, chunk_gap=args.chunk_gap_ms / 1000.0)
    if args.text is not None:
        behaviour = behaviour.but(text=args.text)
    fake = FakeProvider(args.provider, behaviour=behaviour, api_key=args.api_key, host=args.host, port=args.port)
    with fake:
        print(f"fake {args.provider} provider listening; base_url={fake.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
