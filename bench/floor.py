"""The `floor` target: the least a gateway doing DAC's round trips can add on this machine.

    .venv/bin/python -m uvicorn --app-dir bench floor:app --port 9400   (bench/run.py starts it)

A bare ASGI proxy, no framework, no auth, no routing, no JSON handling of the request or the
answer: per call it runs one Redis script (the quota reserve's round trip), forwards the body to
the upstream with DAC's HTTP client (providers/adapters/http1.py) and passes the answer through (plain or streamed, bytes untouched), and
before the answer's end writes the audit record DAC writes for a call, beside a second Redis
script (the settlement): the same two rows (a provider call, a routing decision), hash-linked
with audit/chain.py, through the same `dac_audit_append` statement into the same table, durable
on return. It writes the chain of its own org (`dac-bench-floor`, made by bench/setup_dac.py),
which stays whole: `manage.py verify_audit` checks it like any other. What DAC adds beyond this
is its own code; what this adds beyond `direct` is the round trips, the audit record and the
wake-ups between processes.

Environment: FLOOR_UPSTREAM (the upstream's chat completions URL), FLOOR_ORG_ID, DATABASE_URL and
REDIS_URL (DAC's defaults: the same servers and role). Measured at concurrency 1 only: it is a
latency floor, and its one PostgreSQL connection takes one append at a time.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from audit.chain import GENESIS_HASH, chained  # noqa: E402  (stdlib only, no Django)
from providers.adapters.http1 import Http1Client  # noqa: E402  (no Django either)

UPSTREAM = os.environ["FLOOR_UPSTREAM"]
ORG_ID = int(os.environ["FLOOR_ORG_ID"])
COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
APPEND = "SELECT appended, head_seq, head_hash, ids FROM dac_audit_append(%s, %s, %s::jsonb)"
HEAD = "SELECT seq, hash FROM audit_auditlog WHERE org_id = %s ORDER BY seq DESC LIMIT 1"
# What DAC audits for one answered call: the provider call (with its request and answer hashes:
# their size, not their meaning) and the routing decision.
EVENTS = (
    ("provider.call", "provider:openai_compatible",
     {"provider": "openai_compatible", "model": "bench-model", "outcome": "ok", "latency_ms": 100,
      "input_tokens": 12, "output_tokens": 20, "thread_id": None, "message_id": None}, ("9" * 64, "8" * 64)),
    ("routing.decision", "gateway",
     {"rule": "explicit", "reason": "You chose openai_compatible for this message.", "explicit": True,
      "provider": "openai_compatible", "model": "bench-model", "skipped": [], "recalled": [], "outcome": "complete"}, ("", "")),
)


class Floor:
    def __init__(self) -> None:
        self.http: Http1Client | None = None
        self.database: psycopg.AsyncConnection | None = None
        self.redis: redis.Redis | None = None
        self.script = ""

    async def start(self) -> None:
        self.http = Http1Client(max_connections=2000, keepalive_seconds=30.0, user_agent="dac-bench-floor")
        self.database = await psycopg.AsyncConnection.connect(
            os.environ.get("DATABASE_URL") or "postgres://dac_app@127.0.0.1:5432/dac", autocommit=True)
        await self.database.execute("SELECT set_config('app.org_id', %s, false)", (str(ORG_ID),))
        head = await (await self.database.execute(HEAD, (ORG_ID,))).fetchone()
        self.head = tuple(head) if head else (0, GENESIS_HASH)
        self.redis = redis.Redis.from_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
        self.script = await self.redis.script_load(COUNT)
        self.lock = asyncio.Lock()  # one psycopg connection: one statement at a time

    async def stop(self) -> None:
        self.http.close()
        await self.database.close()
        await self.redis.aclose()

    async def audit(self) -> None:
        """The call's two audit rows, linked to the chain's head, durable on return."""
        async with self.lock:
            while True:
                records = [
                    {"org_id": ORG_ID, "actor_type": "system", "actor_id": "", "actor_label": "bench/floor.py",
                     "event": event, "target": target, "details": details,
                     "request_hash": hashes[0], "response_hash": hashes[1], "created_at": datetime.now(UTC)}
                    for event, target, details, hashes in EVENTS
                ]
                payload = chained(records, self.head)
                appended, head_seq, head_hash, _ = await (await self.database.execute(APPEND, (ORG_ID, self.head[0], payload))).fetchone()
                self.head = (records[-1]["seq"], records[-1]["hash"]) if appended else (head_seq, head_hash)
                if appended:
                    return

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await self.redis.evalsha(self.script, 1, "dac-bench-floor:reserve", 1)
        reply = await self.http.request("POST", UPSTREAM, headers={"Content-Type": "application/json"}, body=body,
                                        connect_timeout=None, read_timeout=None, proxy=None)
        try:
            headers = [(b"content-type", reply.headers.get("Content-Type", "application/json").encode())]
            if "text/event-stream" not in reply.headers.get("Content-Type", ""):
                content = await reply.read()
                await self.settle()
                await send({"type": "http.response.start", "status": reply.status,
                            "headers": headers + [(b"content-length", str(len(content)).encode())]})
                await send({"type": "http.response.body", "body": content})
                return
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            async for part in reply.chunks():
                await send({"type": "http.response.body", "body": part, "more_body": True})
        finally:
            reply.close()
        await self.settle()
        await send({"type": "http.response.body"})

    async def settle(self) -> None:
        await asyncio.gather(self.audit(), self.redis.evalsha(self.script, 1, "dac-bench-floor:settle", 1))

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = Floor()
