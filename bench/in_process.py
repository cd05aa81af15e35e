"""CPU and wall time of one gateway call, in-process: the quickest A/B of a code change.

    .venv/bin/python bench/in_process.py                          # this checkout: per-call wall and CPU
    .venv/bin/python bench/in_process.py --against ../old --runs 4 # alternate with another checkout
    .venv/bin/python bench/in_process.py --profile 40              # cProfile, top 40 by own time
    .venv/bin/python bench/in_process.py --delay 100 --phases      # where one call's time goes, step by step
    .venv/bin/python bench/in_process.py --delay 100 --concurrency 64 --calls 1920   # under load: calls/s, audit writes

`POST /v1/chat/completions` is sent straight to `dac.asgi.application` (no HTTP server, no load
generator) `--calls` times after a warm-up, against bench/upstream.py over real HTTP, with quota,
audit and metrics on (the org, token and key of bench/setup_dac.py). What is left is DAC's own
work plus its PostgreSQL, Redis and upstream round trips, one call at a time (or `--concurrency`
closed loops of calls at once, with the number of appends each audit write took). The machine's
speed drifts within minutes here, so compare checkouts with `--against`, which alternates the
two `--runs` times and prints each run and the means. Needs `make db` (and the other checkout's
venv is not used: both run with this one's packages).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))


def _serve_upstream() -> tuple[subprocess.Popen, int]:
    from run import PY, free_port, http_json

    port = free_port()
    upstream = subprocess.Popen([str(PY), str(BENCH / "upstream.py"), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if http_json(port, "GET", "/v1/models")[0] == 200:
                return upstream, port
        except OSError:
            time.sleep(0.1)
    upstream.kill()
    raise SystemExit("bench/upstream.py did not start")


def _token(port: int) -> str:
    from run import PY, dac_env

    done = subprocess.run([str(PY), str(BENCH / "setup_dac.py"), "--base-url", f"http://127.0.0.1:{port}/v1"],
                          env=dac_env(), cwd=str(ROOT), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"setup_dac.py failed (is the database migrated? `make db`):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--model", default="openai_compatible/bench-model", help='or "auto" (the routing rules)')
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--against", type=Path, help="another checkout of DAC to alternate with")
    parser.add_argument("--runs", type=int, default=1, help="with --against: alternations")
    parser.add_argument("--profile", type=int, metavar="N", help="cProfile the calls, print the top N by own time")
    parser.add_argument("--sort", default="tottime", help="with --profile: pstats order (cumulative, ...)")
    parser.add_argument("--delay", type=int, default=0, metavar="MS", help="the upstream's delay before its first byte")
    parser.add_argument("--phases", action="store_true", help="median time between the steps of a call (wall)")
    parser.add_argument("--concurrency", type=_at_least_one, default=1, metavar="N",
                        help="calls in flight at once (closed loops); wall_ms is then wall time ÷ calls, 1000 ÷ calls/s")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the checkout to import
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return _measure(args)

    from run import PY, dac_env, http_json

    upstream, port = _serve_upstream()
    try:
        token = _token(port)
        http_json(port, "POST", "/_bench/config", {"delay_ms": args.delay})
        checkouts = [ROOT] if args.against is None else [ROOT, args.against.resolve()]
        totals: dict[Path, list[tuple[float, float]]] = {checkout: [] for checkout in checkouts}
        for _ in range(args.runs if args.against else 1):
            for checkout in checkouts:
                command = [str(PY), str(BENCH / "in_process.py"), "--measure", str(checkout), "--token", token,
                           "--calls", str(args.calls), "--model", args.model]
                command += ["--stream"] if args.stream else []
                command += ["--profile", str(args.profile), "--sort", args.sort] if args.profile else []
                command += ["--phases"] if args.phases else []
                command += ["--concurrency", str(args.concurrency)]
                done = subprocess.run(command, env=dac_env(), cwd=str(checkout), capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-3000:])
                print(f"{checkout}: {done.stdout.strip()}", flush=True)
                figures = json.loads(done.stdout.strip().splitlines()[0])
                totals[checkout].append((figures["wall_ms"], figures["cpu_ms"]))
        if args.against:
            for checkout, runs in totals.items():
                wall = sum(w for w, _ in runs) / len(runs)
                cpu = sum(c for _, c in runs) / len(runs)
                print(f"mean of {len(runs)}: {checkout}: wall {wall:.3f} ms, CPU {cpu:.3f} ms a call")
    finally:
        upstream.terminate()
    return 0


def _measure(args) -> int:
    """In the child: import the checkout's DAC and time its calls."""
    sys.path.insert(0, str(args.measure))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")
    import logging

    logging.disable(logging.WARNING)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from dac.asgi import application

    body = json.dumps({"model": args.model, "messages": [{"role": "user", "content": "Say something for the benchmark."}],
                       "stream": args.stream}).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"authorization", f"Bearer {args.token}".encode()), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }

    async def call() -> None:
        sent_body = False
        done = asyncio.Event()
        status = []

        async def receive():
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
                mark("response head sent")
            elif not message.get("more_body"):
                mark("response ended")
                done.set()
            elif _has_content(message.get("body", b"")) and not any(step == "first content sent" for step, _ in timeline):
                mark("first content sent")

        timeline: list[tuple[str, float]] = []
        marks.set(timeline)  # this call's, seen by the tasks it starts (they copy the context)
        mark("request received")
        await application(scope, receive, send)
        timelines.append(timeline)
        if status != [200]:
            raise SystemExit(f"the gateway answered {status}")

    marks: contextvars.ContextVar[list[tuple[str, float]] | None] = contextvars.ContextVar("marks", default=None)
    timelines: list[list[tuple[str, float]]] = []

    def mark(step: str) -> None:
        timeline = marks.get()
        if args.phases and timeline is not None:  # None: a task started outside any call
            timeline.append((step, time.perf_counter()))

    if args.phases:
        _mark_steps(mark)
    writes = _count_audit_writes() if args.concurrency > 1 else []

    async def calls(n: int) -> None:
        async def closed_loop(count: int) -> None:
            for _ in range(count):
                await call()

        loops = args.concurrency
        await asyncio.gather(*(closed_loop(n // loops + (i < n % loops)) for i in range(loops)))

    async def run() -> None:
        await calls(max(200 if not args.delay else 20, 2 * args.concurrency))  # warm: caches, connections, the chain head
        timelines.clear()
        writes.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        await calls(args.calls)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(json.dumps({"wall_ms": round(wall / args.calls * 1000, 3), "cpu_ms": round(cpu / args.calls * 1000, 3)}))
        if args.concurrency > 1:
            sizes = collections.Counter(writes)
            print(f"audit writes: {len(writes)} for {sum(writes)} appends; appends per write: "
                  + ", ".join(f"{size}: {count}" for size, count in sorted(sizes.items())))
        if args.phases:
            _print_phases(timelines)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await calls(args.calls)
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stdout).sort_stats(args.sort).print_stats(args.profile)

    asyncio.run(run())
    return 0


def _has_content(part: bytes) -> bool:
    """Whether a streamed part carries answer text (the role-only first event does not)."""
    for line in part.split(b"\n"):
        if line.startswith(b"data: {"):
            choices = json.loads(line[6:]).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                return True
    return False


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _count_audit_writes() -> list[int]:
    """The number of appends each audit write (group commit) takes, in a list the caller reads.
    Wraps the function in place, in this measuring process only."""
    from audit import services

    original, sizes = services._write_batch, []

    async def counted(connection, batch):
        sizes.append(len(batch))
        return await original(connection, batch)

    services._write_batch = counted
    return sizes


def _mark_steps(mark) -> None:
    """Time stamps where a call's steps start and end (--phases): the quota reserve and
    settlement, the provider exchange, the answer's bookkeeping, their PostgreSQL statements and
    Redis scripts. Wraps the functions in place, in this measuring process only."""
    from dac.db.loop_connection import LoopConnection
    from providers.adapters.client import ProviderClient
    from providers.quota_store.redis_store import LoopScriptClient
    from providers.services import quota
    from threads.services import record

    def timed(owner, name: str, step: str) -> None:
        original = getattr(owner, name)

        async def wrapper(*args, **kwargs):
            mark(f"{step} >")
            try:
                return await original(*args, **kwargs)
            finally:
                mark(f"{step} <")

        setattr(owner, name, wrapper)

    timed(quota, "quota_reserve_async", "quota reserve")
    timed(ProviderClient, "send", "provider exchange")
    timed(record, "finish", "bookkeeping")
    timed(LoopConnection, "fetchone", "  PostgreSQL statement")
    timed(LoopScriptClient, "run", "  Redis script")


def _print_phases(timelines: list[list[tuple[str, float]]]) -> None:
    """The median time from each step to the next, over the calls whose steps came in the
    usual order (the most common sequence). Under --concurrency an audit write's statement is
    marked in the timeline of the call whose append started the writer, so most calls' usual
    order has none."""
    import statistics

    sequences = collections.Counter(tuple(step for step, _ in timeline) for timeline in timelines)
    usual, count = sequences.most_common(1)[0]
    chosen = [timeline for timeline in timelines if tuple(step for step, _ in timeline) == usual]
    print(f"steps of {count} of {len(timelines)} calls (ms since the previous step, median):")
    for index, step in enumerate(usual[1:], start=1):
        gap = statistics.median((timeline[index][1] - timeline[index - 1][1]) * 1000 for timeline in chosen)
        print(f"  {gap:9.3f}  {step}")
    total = statistics.median((timeline[-1][1] - timeline[0][1]) * 1000 for timeline in chosen)
    print(f"  {total:9.3f}  in all")


if __name__ == "__main__":
    raise SystemExit(main())
