"""A bounded, checking load generator for OpenAI-compatible `POST /v1/chat/completions`.

    .venv/bin/python bench/loadgen.py http://127.0.0.1:8000/v1/chat/completions --token dac_... \
        --model openai_compatible/bench-model --concurrency 16 --requests 2000 --seconds 10 [--stream]

`concurrency` keep-alive connections, each sending its next request as soon as the previous
answer ended (closed loop). Stops after `requests` requests or `seconds`, whichever comes first
(requests in flight then finish, each bounded by `timeout`). Raw asyncio (uvloop when present)
with llhttp (httptools) parsing the responses, so one core drives thousands of requests a second.

Every answer is checked: status 200; plain: valid JSON whose choices[0].message.content is the
expected text; stream: SSE events of valid JSON whose choices[0].delta.content concatenate to the
expected text, an error event counts as an error, and `data: [DONE]` must come last. Reported:
requests/s (checked answers only), latency p50/p99 (request written → body ended), time to the
first streamed content byte (the first event with non-empty delta.content; a role-only chunk
does not count), errors by kind, and the p50 of a chosen response header (X-DAC-Overhead-Ms).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httptools

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import expected_text  # noqa: E402,F401  (re-exported for callers)


class Failure(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Target:
    url: str
    model: str = "bench-model"
    token: str = ""
    header: str = "x-dac-overhead-ms"  # a response header whose values are collected
    max_tokens: int | None = 64
    include_usage: bool = False

    def request_bytes(self, stream: bool) -> bytes:
        parts = urlsplit(self.url)
        body: dict = {"model": self.model, "messages": [{"role": "user", "content": "Say something for the benchmark."}]}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        if stream:
            body["stream"] = True
            if self.include_usage:
                body["stream_options"] = {"include_usage": True}
        data = json.dumps(body).encode()
        head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
                "Accept: application/json, text/event-stream", f"Content-Length: {len(data)}"]
        if self.token:
            head.append(f"Authorization: Bearer {self.token}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + data


@dataclass
class Result:
    ok: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)  # ms, checked answers only
    ttft: list[float] = field(default_factory=list)  # ms, streams only
    header_values: list[float] = field(default_factory=list)
    wall: float = 0.0  # s, first request sent → last answer ended
    error_samples: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        rank = (len(ordered) - 1) * q / 100
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    def p(self, q: float) -> float:
        return self._pct(self.latencies, q)

    def ttft_p(self, q: float) -> float:
        return self._pct(self.ttft, q)

    def header_p(self, q: float) -> float:
        return self._pct(self.header_values, q)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok, "errors": dict(self.errors), "wall_s": round(self.wall, 3), "rps": round(self.rps, 1),
            "p50_ms": round(self.p(50), 3), "p99_ms": round(self.p(99), 3),
            "ttft_p50_ms": round(self.ttft_p(50), 3), "ttft_p99_ms": round(self.ttft_p(99), 3),
            "header_p50": round(self.header_p(50), 3), "error_samples": self.error_samples,
        }


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `request()` sends one request and checks its answer."""

    def __init__(self, header: bytes) -> None:
        self.header = header
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future | None = None
        self._reset(False, "")

    def _reset(self, stream: bool, expected: str) -> None:
        self.stream, self.expected = stream, expected
        self.status = 0
        self.body: list[bytes] = []
        self.sse = b""
        self.content: list[str] = []
        self.done = False
        self.after_done = False
        self.stream_error = ""
        self.first_content_at: float | None = None
        self.header_value: float | None = None
        self.sent_at = 0.0

    # -- asyncio -------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad_http")

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail("connection_closed")

    def _fail(self, kind: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(Failure(kind))
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- llhttp callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == self.header:
            try:
                self.header_value = float(value)
            except ValueError:
                pass

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.stream and self.status == 200:
            self._scan(body)
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if not self.parser.should_keep_alive():
            self.closed = True

    # -- SSE -----------------------------------------------------------------------------------
    def _scan(self, data: bytes) -> None:
        buf = self.sse + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            event, buf = buf[:end], buf[end + 2:]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue  # comments, event:, id:
                payload = line[5:].strip()
                if self.done:
                    self.after_done = True
                    continue
                if payload == b"[DONE]":
                    self.done = True
                    continue
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    self.stream_error = self.stream_error or "bad_json_event"
                    continue
                if not isinstance(chunk, dict) or "error" in chunk:
                    if not self.stream_error:
                        self.stream_error = "stream_error_event"
                        self.body.append(payload)  # kept as the error sample
                    continue
                choices = chunk.get("choices") or []
                if choices:
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        if self.first_content_at is None:
                            self.first_content_at = time.perf_counter()
                        self.content.append(piece)
        self.sse = buf

    # -- one exchange --------------------------------------------------------------------------
    async def request(self, data: bytes, stream: bool, expected: str, timeout: float) -> tuple[float, float | None, float | None]:
        """(latency ms, first content ms or None, header value) of a checked answer; raises Failure."""
        self._reset(stream, expected)
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.sent_at = started = time.perf_counter()
        self.transport.write(data)
        handle = loop.call_later(timeout, self._timeout)
        try:
            await self.waiter
        finally:
            handle.cancel()
            self.waiter = None
        ended = time.perf_counter()
        self._check()
        first = None if self.first_content_at is None else (self.first_content_at - started) * 1000
        return (ended - started) * 1000, first, self.header_value

    def _timeout(self) -> None:
        self._fail("timeout")

    def _check(self) -> None:
        if self.status != 200:
            raise Failure(f"http_{self.status}")
        if self.stream:
            if self.stream_error:
                raise Failure(self.stream_error)
            if not self.done:
                raise Failure("no_done")
            if self.after_done:
                raise Failure("data_after_done")
            if "".join(self.content) != self.expected:
                raise Failure("wrong_content")
            return
        try:
            payload = json.loads(b"".join(self.body))
        except ValueError:
            raise Failure("bad_json") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise Failure("bad_shape") from None
        if content != self.expected:
            raise Failure("wrong_content")


async def run_async(target: Target, *, stream: bool, concurrency: int, max_requests: int, duration: float,
                    expected: str, timeout: float = 30.0, connect_timeout: float = 10.0) -> Result:
    parts = urlsplit(target.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    data = target.request_bytes(stream)
    header = target.header.lower().encode()
    loop = asyncio.get_running_loop()
    result = Result()
    issued = 0
    started = time.perf_counter()
    deadline = started + duration
    last_end = started

    async def connect() -> Connection:
        _, conn = await asyncio.wait_for(loop.create_connection(lambda: Connection(header), host, port), connect_timeout)
        return conn

    async def worker() -> None:
        nonlocal issued, last_end
        conn: Connection | None = None
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            try:
                if conn is None or conn.closed:
                    conn = await connect()
                latency, first, value = await conn.request(data, stream, expected, timeout)
            except Failure as exc:
                result.errors[exc.kind] += 1
                if (exc.kind.startswith("http_") or exc.kind == "stream_error_event") and conn is not None and not result.error_samples.get(exc.kind):
                    result.error_samples[exc.kind] = b"".join(conn.body)[:300].decode(errors="replace")
                if conn is not None and conn.closed:
                    conn = None
                continue
            except (OSError, asyncio.TimeoutError) as exc:
                result.errors["connect_" + type(exc).__name__] += 1
                conn = None
                await asyncio.sleep(0.05)
                continue
            finally:
                last_end = time.perf_counter()
            result.ok += 1
            result.latencies.append(latency)
            if first is not None:
                result.ttft.append(first)
            if value is not None:
                result.header_values.append(value)
            if conn.closed:
                conn = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall = last_end - started
    return result


def use_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def run(target: Target, **kwargs) -> Result:
    use_uvloop()
    return asyncio.run(run_async(target, **kwargs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--token", default="")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunks", type=int, default=20, help="the fake upstream's chunk count (the expected text)")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    target = Target(args.url, model=args.model, token=args.token)
    result = run(target, stream=args.stream, concurrency=args.concurrency, max_requests=args.requests,
                 duration=args.seconds, expected=expected_text(args.chunks), timeout=args.timeout)
    print(json.dumps(result.as_dict(), indent=2))
    return 0 if not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
