"""The `floor` target: the least a gateway doing DAC's round trips can add on this machine.

    .venv/bin/python -m uvicorn --app-dir bench floor:app --port 9400   (bench/run.py starts it)

A bare ASGI proxy, no framework, no auth, no routing, no JSON handling: per call it runs one Redis
script (the quota reserve's round trip), forwards the body to the upstream with aiohttp and passes
the answer through (plain or streamed, bytes untouched), and before the answer's end commits one
durable PostgreSQL transaction (a transactional WAL message, flushed like the audit append's
commit) beside a second Redis script (the settlement), as DAC does. What DAC adds beyond this is
its own code; what this adds beyond `direct` is the round trips and the wake-ups between processes.

Environment: FLOOR_UPSTREAM (the upstream's chat completions URL), DATABASE_URL and REDIS_URL
(DAC's defaults: the same servers and role). Measured at concurrency 1 only: it is a latency
floor, and its one PostgreSQL connection takes one commit at a time.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
import psycopg
import redis.asyncio as redis

UPSTREAM = os.environ["FLOOR_UPSTREAM"]
COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
COMMIT = "SELECT pg_logical_emit_message(true, 'dac-bench-floor', %s)"


class Floor:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.database: psycopg.AsyncConnection | None = None
        self.redis: redis.Redis | None = None
        self.script = ""

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2000))
        self.database = await psycopg.AsyncConnection.connect(
            os.environ.get("DATABASE_URL") or "postgres://dac_app@127.0.0.1:5432/dac", autocommit=True)
        self.redis = redis.Redis.from_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
        self.script = await self.redis.script_load(COUNT)
        self.lock = asyncio.Lock()  # one psycopg connection: one statement at a time

    async def stop(self) -> None:
        await self.session.close()
        await self.database.close()
        await self.redis.aclose()

    async def commit(self) -> None:
        async with self.lock:
            await self.database.execute(COMMIT, ("x",))

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
        async with self.session.post(UPSTREAM, data=body, headers={"Content-Type": "application/json"}) as reply:
            headers = [(b"content-type", reply.headers.get("Content-Type", "application/json").encode())]
            if "text/event-stream" not in reply.headers.get("Content-Type", ""):
                content = await reply.read()
                await self.settle()
                await send({"type": "http.response.start", "status": reply.status,
                            "headers": headers + [(b"content-length", str(len(content)).encode())]})
                await send({"type": "http.response.body", "body": content})
                return
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            async for part in reply.content.iter_any():
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await self.settle()
        await send({"type": "http.response.body"})

    async def settle(self) -> None:
        await asyncio.gather(self.commit(), self.redis.evalsha(self.script, 1, "dac-bench-floor:settle", 1))

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
