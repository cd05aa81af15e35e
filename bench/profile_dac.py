"""Where DAC's gateway time goes: a py-spy profile under load, and a count of the work per request.

    .venv/bin/python bench/run.py --profile   # py-spy on one uvicorn worker under load → bench/profile.svg
    .venv/bin/python bench/run.py --queries   # DB statements, transactions, Redis commands, thread hops

--profile: one DAC worker (DEBUG off) at concurrency 16 against the fake upstream (no delay; both
set by --profile-concurrency / --profile-delay),
plain then streaming; py-spy samples the worker (`--gil`: only the thread holding the GIL, i.e.
the CPU the worker spends, which bounds its throughput; and once without it: where requests wait,
DB round trips included). Top functions by own and total time are printed (bench/pyspy_top.py) and
written to <out>/profile.md; the plain CPU flame graph goes to bench/profile.svg.

--queries: in a separate process, the ASGI application is called in-process (httpx ASGITransport)
with the same settings as the server; psycopg and redis-py (sync and asyncio), asgiref and threading are wrapped to count
what one `POST /v1/chat/completions` does: SQL statements (and which), transactions, Redis
commands, sync_to_async hops (and what they run), threads started. Counting only: nothing in the
app changes. Metrics' buffer is flushed by size only here (DAC_METRICS_FLUSH_SECONDS=0), so its
batched INSERT (one per 500 requests) does not show up.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

PYSPY = ROOT / ".venv" / "bin" / "py-spy"


# --- the profile (called by run.py) ------------------------------------------------------------


def _ensure_pyspy() -> None:
    if not PYSPY.exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "pip"), "install", "--quiet", "py-spy"], check=True)


def profile(bench, token: str, seconds: float = 12.0, concurrency: int = 16, delay_ms: int = 0) -> None:
    import loadgen
    import pyspy_top
    from common import expected_text
    from run import log

    _ensure_pyspy()
    server = bench.start_dac("dac-profile", 1, token)
    pid = server.proc.pid
    sections = [f"py-spy {subprocess.run([str(PYSPY), '--version'], capture_output=True, text=True).stdout.strip()} on one uvicorn worker"
                f" (DEBUG off), concurrency {concurrency}, upstream delay {delay_ms} ms, {seconds:.0f} s per capture, 200 samples/s.", ""]
    bench.upstream_config(delay_ms=delay_ms)
    captures = [("plain", "cpu", ["--gil"], "flamegraph"), ("plain", "cpu", ["--gil"], "raw"), ("plain", "wall", [], "raw"),
                ("stream", "cpu", ["--gil"], "raw")]
    for mode, kind, flags, fmt in captures:
        target = loadgen.Target(f"http://127.0.0.1:{server.port}/v1/chat/completions", model="openai_compatible/bench-model", token=token)
        loadgen.run(target, stream=mode == "stream", concurrency=concurrency, max_requests=10**6, duration=1.5, expected=expected_text(20))
        out = BENCH / "profile.svg" if fmt == "flamegraph" else bench.out / f"profile-{mode}-{kind}.raw"
        cmd = [str(PYSPY), "record", "--pid", str(pid), "--rate", "200", "--duration", str(int(seconds)), "--nonblocking",
               "--format", fmt, "-o", str(out), *flags]
        spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)
        result = loadgen.run(target, stream=mode == "stream", concurrency=concurrency, max_requests=10**7,
                             duration=seconds + 1, expected=expected_text(20))
        output = spy.communicate(timeout=60)[0]
        log(f"profile {mode}/{kind} ({fmt}): {result.rps:.0f} req/s under py-spy, errors {dict(result.errors)}; {output.strip().splitlines()[-1:]}")
        if fmt != "raw":
            continue
        with open(out) as f:
            samples, own, total, _ = pyspy_top.aggregate(f)
        title = {"cpu": "CPU (samples holding the GIL)", "wall": "wall (all non-idle samples, waits included)"}[kind]
        sections += [f"### {mode}, {title}: {samples} samples, {result.rps:.0f} req/s while sampled", "",
                     pyspy_top.table("own", own, samples, 20, True), "", pyspy_top.table("total", total, samples, 30, True), ""]
    text = "\n".join(sections)
    (bench.out / "profile.md").write_text(text + "\n")
    print(text)
    log(f"written {bench.out / 'profile.md'} and {BENCH / 'profile.svg'}")
    server.stop()
    bench.servers.pop("dac-profile", None)


def queries(bench, token: str) -> None:
    from run import PY, dac_env, log

    env = dac_env({"DAC_METRICS_FLUSH_SECONDS": "0"})
    done = subprocess.run([str(PY), __file__, "--count", token], env=env, cwd=str(ROOT), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-4000:])
    (bench.out / "queries.md").write_text(done.stdout)
    print(done.stdout)
    log(f"written {bench.out / 'queries.md'}")


# --- the counter (runs in its own process, Django in-process) -------------------------------------


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.sql = collections.Counter()
        self.begins = 0
        self.commits = 0
        self.rollbacks = 0
        self.redis = collections.Counter()
        self.hops = collections.Counter()
        self.threads = 0


COUNTS = Counts()
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+\b")


def _normal(sql) -> str:
    text = sql.as_string(None) if hasattr(sql, "as_string") else (sql.decode() if isinstance(sql, bytes) else str(sql))
    text = " ".join(text.split())
    text = _LITERALS.sub("?", text)
    return text[:150]


def _install_counters() -> None:
    import psycopg
    from asgiref import sync as asgiref_sync
    from psycopg.pq import TransactionStatus
    from redis import asyncio as redis_asyncio
    from redis import client as redis_client

    original_execute = psycopg.Cursor.execute
    original_executemany = psycopg.Cursor.executemany

    def begins_now(cursor) -> None:
        conn = cursor.connection
        if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            COUNTS.begins += 1

    def execute(self, query, *args, **kwargs):
        with COUNTS.lock:
            begins_now(self)
            COUNTS.sql[_normal(query)] += 1
        return original_execute(self, query, *args, **kwargs)

    def executemany(self, query, *args, **kwargs):
        with COUNTS.lock:
            begins_now(self)
            COUNTS.sql[_normal(query)] += 1
        return original_executemany(self, query, *args, **kwargs)

    psycopg.Cursor.execute = execute
    psycopg.Cursor.executemany = executemany
    original_async_execute = psycopg.AsyncCursor.execute

    async def async_execute(self, query, *args, **kwargs):
        with COUNTS.lock:
            begins_now(self)
            COUNTS.sql[_normal(query) + " (async)"] += 1
        return await original_async_execute(self, query, *args, **kwargs)

    psycopg.AsyncCursor.execute = async_execute

    original_commit, original_rollback = psycopg.Connection.commit, psycopg.Connection.rollback

    def commit(self):
        if self.info.transaction_status != TransactionStatus.IDLE:
            COUNTS.commits += 1
        return original_commit(self)

    def rollback(self):
        if self.info.transaction_status != TransactionStatus.IDLE:
            COUNTS.rollbacks += 1
        return original_rollback(self)

    psycopg.Connection.commit, psycopg.Connection.rollback = commit, rollback

    original_command = redis_client.Redis.execute_command

    def execute_command(self, *args, **options):
        COUNTS.redis[str(args[0]).upper() if args else "?"] += 1
        return original_command(self, *args, **options)

    redis_client.Redis.execute_command = execute_command
    original_pipeline_execute = redis_client.Pipeline.execute

    def pipeline_execute(self, *args, **kwargs):
        COUNTS.redis["PIPELINE(" + ",".join(str(c[0][0]) for c in self.command_stack) + ")"] += 1
        return original_pipeline_execute(self, *args, **kwargs)

    redis_client.Pipeline.execute = pipeline_execute
    # asyncio: counted on the connection, which the client and the quota's LoopScriptClient both use.
    original_async_send = redis_asyncio.connection.AbstractConnection.send_command

    async def async_send_command(self, *args, **options):
        COUNTS.redis[str(args[0]).upper() + " (async)" if args else "?"] += 1
        return await original_async_send(self, *args, **options)

    redis_asyncio.connection.AbstractConnection.send_command = async_send_command

    original_call = asgiref_sync.SyncToAsync.__call__

    async def call(self, *args, **kwargs):
        func = self.func
        name = getattr(func, "__qualname__", None) or type(func).__name__
        if name == "_run_released" and args:  # dac.db.steps.db_step(fn, ...)
            name = f"_db({getattr(args[0], '__qualname__', args[0])})"
        COUNTS.hops[name] += 1
        return await original_call(self, *args, **kwargs)

    asgiref_sync.SyncToAsync.__call__ = call

    original_start = threading.Thread.start

    def start(self):
        COUNTS.threads += 1
        return original_start(self)

    threading.Thread.start = start


def count(token: str, n: int = 40) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")
    sys.path.insert(0, str(ROOT))
    _install_counters()
    import asyncio

    import httpx

    from dac.asgi import application

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=application)
        out = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
            for label, body in (
                ("plain, model openai_compatible/bench-model", {"model": "openai_compatible/bench-model"}),
                ("stream, model openai_compatible/bench-model", {"model": "openai_compatible/bench-model", "stream": True}),
                ("plain, model auto", {"model": "auto"}),
            ):
                payload = {**body, "messages": [{"role": "user", "content": "Say something for the benchmark."}], "max_tokens": 64}
                for _ in range(5):  # warm: pools, limits cache, scripts loaded
                    response = await client.post("/v1/chat/completions", json=payload, headers=headers)
                    assert response.status_code == 200, response.text[:500]
                COUNTS.reset()
                started = time.perf_counter()
                for _ in range(n):
                    response = await client.post("/v1/chat/completions", json=payload, headers=headers)
                    assert response.status_code == 200, response.text[:500]
                elapsed = (time.perf_counter() - started) / n * 1000
                out += _render(label, n, elapsed)
        return out

    lines = asyncio.run(run())
    print("\n".join(lines))
    return 0


def _render(label: str, n: int, ms: float) -> list[str]:
    c = COUNTS
    statements = sum(c.sql.values())
    redis_total = sum(c.redis.values())
    hops = sum(c.hops.values())
    lines = [f"### {label}: per request (mean of {n}, in-process, {ms:.1f} ms each sequentially)", "",
             f"- SQL statements: **{statements / n:.1f}**; transactions (BEGIN … COMMIT): **{c.begins / n:.1f}** begun,"
             f" {c.commits / n:.1f} committed, {c.rollbacks / n:.1f} rolled back → about **{(statements + c.begins + c.commits + c.rollbacks) / n:.1f}"
             f" PostgreSQL round trips**",
             f"- Redis commands: **{redis_total / n:.1f}** ({', '.join(f'{k} {v / n:.1f}' for k, v in c.redis.most_common())})",
             f"- sync_to_async thread hops: **{hops / n:.1f}**; threads started: **{c.threads / n:.1f}**", "",
             "| per request | SQL (literals replaced by ?) |", "|---:|---|"]
    lines += [f"| {v / n:.2f} | `{k}` |" for k, v in c.sql.most_common()]
    lines += ["", "| per request | sync_to_async hop (what runs in the worker thread) |", "|---:|---|"]
    lines += [f"| {v / n:.2f} | `{k}` |" for k, v in c.hops.most_common()]
    lines.append("")
    return lines


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--count":
        sys.exit(count(sys.argv[2]))
    print(__doc__)
