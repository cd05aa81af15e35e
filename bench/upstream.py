"""A fake OpenAI-compatible upstream that is never the bottleneck of a benchmark.

    .venv/bin/python bench/upstream.py --port 9300 [--delay-ms 0] [--chunks 20] [--chunk-gap-ms 0]
    .venv/bin/python bench/upstream.py --selftest        # its own throughput, one core each side

One process, one thread, a raw asyncio protocol (uvloop when installed) with llhttp (httptools)
parsing the requests: no framework, no per-request task unless a delay asks for one. It speaks
HTTP/1.1 with keep-alive (and pipelining) and answers:

  POST /v1/chat/completions   plain: one JSON chat.completion (Content-Length);
                              "stream": true: SSE over chunked encoding, one HTTP chunk per event:
                              a role chunk, N content chunks, a finish chunk, a usage chunk
                              (choices: []), then `data: [DONE]`.
  GET  /v1/models             one model, "bench-model".
  POST /_bench/config         {"delay_ms", "chunks", "chunk_gap_ms"}: change the behaviour live
                              (the benchmark switches delay between runs without a restart).
  GET  /_bench/stats          {"requests", "connections", "active", "peak_active", "config"}
                              (`?reset=1` restarts peak_active: the most answers in progress at
                              once, which shows how many calls a gateway really has in flight).

The answer's text is `expected_text(chunks)` (common.py): the load generator checks every body
against it. `delay_ms` passes before the first byte of a response (headers included);
`chunk_gap_ms` between two content chunks of a stream (0: all events are written at once, as
separate HTTP chunks), so a stream lasts delay + (chunks - 1) * gap. The model name is echoed back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path

import httptools

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import expected_pieces  # noqa: E402


class Config:
    def __init__(self, delay_ms: float = 0.0, chunks: int = 20, chunk_gap_ms: float = 0.0) -> None:
        self.update(delay_ms=delay_ms, chunks=chunks, chunk_gap_ms=chunk_gap_ms)

    def update(self, **values) -> None:
        if "delay_ms" in values:
            self.delay = max(0.0, float(values["delay_ms"])) / 1000
        if "chunks" in values:
            self.chunks = max(1, int(values["chunks"]))
        if "chunk_gap_ms" in values:
            self.gap = max(0.0, float(values["chunk_gap_ms"])) / 1000
        self._plain: dict[bytes, bytes] = {}
        self._stream: dict[bytes, list[bytes]] = {}

    def as_dict(self) -> dict:
        return {"delay_ms": self.delay * 1000, "chunks": self.chunks, "chunk_gap_ms": self.gap * 1000}

    # Bodies are built once per model name and reused: the server's work per request is parsing.
    def plain_response(self, model: bytes) -> bytes:
        cached = self._plain.get(model)
        if cached is None:
            name = model.decode(errors="replace")
            text = "".join(expected_pieces(self.chunks))
            body = json.dumps({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": self.chunks, "total_tokens": 10 + self.chunks},
            }, separators=(",", ":")).encode()
            cached = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            if len(self._plain) < 64:
                self._plain[model] = cached
        return cached

    def stream_events(self, model: bytes) -> list[bytes]:
        """The response head and every event as one HTTP chunk; the last item ends the body."""
        cached = self._stream.get(model)
        if cached is None:
            name = model.decode(errors="replace")
            base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": name}

            def event(payload) -> bytes:
                data = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()) + b"\n\n"
                return f"{len(data):x}\r\n".encode() + data + b"\r\n"

            events = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
            for piece in expected_pieces(self.chunks):
                events.append(event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
            events.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            events.append(event({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": self.chunks, "total_tokens": 10 + self.chunks}}))
            events.append(event(b"[DONE]") + b"0\r\n\r\n")
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            cached = [head + events[0], *events[1:]]
            if len(self._stream) < 64:
                self._stream[model] = cached
        return cached


MODELS_BODY = json.dumps({"object": "list", "data": [{"id": "bench-model", "object": "model", "created": 1_700_000_000, "owned_by": "bench"}]}).encode()


def _json_response(status: int, payload: dict | bytes) -> bytes:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


class Stats:
    requests = 0
    connections = 0
    active = 0  # chat answers in progress now
    peak_active = 0  # the most at once since the last `GET /_bench/stats?reset=1`


def _model_of(body: bytes) -> tuple[bytes, bool]:
    """(model, stream) from a chat request body; json only when the cheap scan is unsure."""
    try:
        data = json.loads(body)
    except ValueError:
        return b"", False
    if not isinstance(data, dict):
        return b"", False
    model = data.get("model")
    return (model if isinstance(model, str) else "").encode(), data.get("stream") is True


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("config", "transport", "parser", "url", "body", "pending", "closed", "keep_alive")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.pending: asyncio.Task | None = None  # the response being produced (keeps order)
        self.closed = False

    # -- asyncio ------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        Stats.connections += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.transport.close()
        except httptools.HttpParserError:
            self.transport.write(_json_response(400, {"error": {"message": "bad request"}}))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.closed = True

    # -- llhttp callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        Stats.requests += 1
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        body = b"".join(self.body)
        keep_alive = self.parser.should_keep_alive()
        if method == b"POST" and path.endswith(b"/chat/completions"):
            model, stream = _model_of(body)
            cfg = self.config
            if self.pending is None and cfg.delay == 0 and (not stream or cfg.gap == 0):
                # The fast path: answer from this callback, no task.
                if stream:
                    self.transport.writelines(cfg.stream_events(model))
                else:
                    self.transport.write(cfg.plain_response(model))
                if not keep_alive:
                    self.transport.close()
                return
            Stats.active += 1
            Stats.peak_active = max(Stats.peak_active, Stats.active)
            self._queue(self._answer_later(model, stream, keep_alive))
            return
        if method == b"GET" and path.endswith(b"/models"):
            self._reply(_json_response(200, MODELS_BODY), keep_alive)
        elif method == b"POST" and path == b"/_bench/config":
            try:
                self.config.update(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                self._reply(_json_response(400, {"error": {"message": str(exc)}}), keep_alive)
                return
            self._reply(_json_response(200, self.config.as_dict()), keep_alive)
        elif method == b"GET" and path == b"/_bench/stats":
            stats = {"requests": Stats.requests, "connections": Stats.connections, "active": Stats.active,
                     "peak_active": Stats.peak_active, "config": self.config.as_dict()}
            if b"reset=1" in self.url:
                Stats.peak_active = Stats.active
            self._reply(_json_response(200, stats), keep_alive)
        else:
            self._reply(_json_response(404, {"error": {"message": "not found", "type": "invalid_request_error"}}), keep_alive)

    # -- responses -----------------------------------------------------------------------------
    def _reply(self, data: bytes, keep_alive: bool) -> None:
        if self.pending is None:
            self.transport.write(data)
            if not keep_alive:
                self.transport.close()
        else:
            async def later():
                self.transport.write(data)
                if not keep_alive:
                    self.transport.close()
            self._queue(later())

    def _queue(self, coro) -> None:
        previous = self.pending

        async def run():
            if previous is not None:
                await previous
            await coro
        task = asyncio.get_running_loop().create_task(run())
        self.pending = task

        def done(t, self=self):
            if self.pending is t:
                self.pending = None
        task.add_done_callback(done)

    async def _answer_later(self, model: bytes, stream: bool, keep_alive: bool) -> None:
        try:
            await self._answer(model, stream, keep_alive)
        finally:
            Stats.active -= 1

    async def _answer(self, model: bytes, stream: bool, keep_alive: bool) -> None:
        cfg = self.config
        if cfg.delay:
            await asyncio.sleep(cfg.delay)
        if self.closed:
            return
        if not stream:
            self.transport.write(cfg.plain_response(model))
        else:
            events = cfg.stream_events(model)
            if cfg.gap == 0:
                self.transport.writelines(events)
            else:
                # events: [head + role, content 1..N, finish, usage, done]: the gap separates
                # content chunks, so a stream lasts delay + (N - 1) * gap.
                last_content = len(events) - 4
                for index, data in enumerate(events):
                    if 1 < index <= last_content:
                        await asyncio.sleep(cfg.gap)
                    if self.closed:
                        return
                    self.transport.write(data)
        if not keep_alive:
            self.transport.close()


def _event_loop_policy() -> str:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:
        return "asyncio"


async def serve(host: str, port: int, config: Config, ready: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(config), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    if ready:
        Path(ready).write_text(str(bound))
    print(f"fake upstream on http://{host}:{bound}/v1 ({config.as_dict()})", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def selftest(seconds: float) -> int:
    """Upstream pinned on one core, load generator on the other: requests per second, CPU per request."""
    import subprocess
    import tempfile

    import loadgen
    import procinfo

    cpus = sorted(os.sched_getaffinity(0))
    ready = Path(tempfile.mkdtemp(prefix="dac-upstream-")) / "port"
    proc = subprocess.Popen([sys.executable, __file__, "--port", "0", "--ready-file", str(ready)],
                            preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[0]})) if len(cpus) > 1 else None)
    try:
        deadline = time.time() + 10
        while not ready.exists() or not ready.read_text():
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("upstream did not start")
            time.sleep(0.05)
        port = int(ready.read_text())
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[1]})
        print("| mode | concurrency | requests/s | p50 ms | p99 ms | upstream CPU µs/req | ⇒ req/s per core |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for stream in (False, True):
            for concurrency in (1, 64):
                target = loadgen.Target(f"http://127.0.0.1:{port}/v1/chat/completions", model="bench-model")
                cpu0 = procinfo.cpu_seconds([proc.pid])
                result = loadgen.run(target, stream=stream, concurrency=concurrency, max_requests=10**7,
                                     duration=seconds, expected=loadgen.expected_text(20))
                cpu = procinfo.cpu_seconds([proc.pid]) - cpu0
                per = cpu / max(result.ok, 1)
                print(f"| {'stream' if stream else 'plain'} | {concurrency} | {result.rps:,.0f} | {result.p(50):.2f} | {result.p(99):.2f} "
                      f"| {per * 1e6:.0f} | {1 / per if per else float('inf'):,.0f} |" + (f" errors {dict(result.errors)}" if result.errors else ""))
    finally:
        proc.terminate()
        proc.wait(5)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9300, help="0: any free port (see --ready-file)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="before the first byte of each answer")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream (and pieces of the text)")
    parser.add_argument("--chunk-gap-ms", type=float, default=0.0, help="between stream events")
    parser.add_argument("--ready-file", help="write the bound port here once listening")
    parser.add_argument("--selftest", action="store_true", help="measure this server's own throughput and exit")
    parser.add_argument("--seconds", type=float, default=3.0, help="per selftest point")
    args = parser.parse_args()
    _event_loop_policy()
    if args.selftest:
        return selftest(args.seconds)
    config = Config(args.delay_ms, args.chunks, args.chunk_gap_ms)
    try:
        asyncio.run(serve(args.host, args.port, config, args.ready_file))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
