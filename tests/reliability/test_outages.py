"""Backing services failing under a running DAC: Qdrant unreachable, Redis killed and started
again (empty), PostgreSQL stopped and started again and restarted with `pg_ctl restart -m fast`.

One real stack for the whole module, all on loopback and private to it: a PostgreSQL 15
cluster of its own (initdb in a temporary folder, never the machine's 5432), a redis-server
of its own (never 6379), a fake OpenAI server, and DAC as a uvicorn subprocess with production
settings (DEBUG off), bootstrapped with scripts/db_bootstrap.py, `manage.py migrate`,
`create_org`, `create_user` and `create_api_token`. QDRANT_URL points at a closed port for the
whole run. Each fault is one timeline, run once by a module fixture that records what every
request saw; the tests below are the claims about that record (see docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fakes import Behaviour, FakeProvider
from tests.reliability.procs import DacProcess, PgCluster, pg_available
from tests.servers import RedisServer, free_port

pytestmark = [
    pytest.mark.skipif(not pg_available(), reason="PostgreSQL 15 server binaries are not installed"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

POOL_TIMEOUT = 1.5  # DB_POOL_TIMEOUT of the DAC under test: how long a request waits for PostgreSQL
PASSWORD = "correct horse battery staple"
EMAIL = "ops@acme.test"
# The longest any single request may take while a backing service is down: one pool wait for
# the request and one for its answer, plus slack for a loaded CI machine. Longer is a hang.
BOUNDED = 2 * POOL_TIMEOUT + 4.0
# How long a client waits for an answer that was in flight when PostgreSQL went away (the outage
# lasts 6 s): past this it has hung.
IN_FLIGHT_PATIENCE = 15.0


@dataclass
class Outcome:
    label: str
    started: float
    elapsed: float
    status: int | None
    body: str = ""
    content_type: str = ""
    error: str = ""
    headers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Stack:
    base: Path
    pg: PgCluster
    redis: RedisServer
    fake: FakeProvider
    dac: DacProcess
    org_id: int = 0
    thread_id: int = 0
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)

    def request(self, label: str, method: str, path: str, *, timeout: float = 30.0, **kwargs) -> Outcome:
        started = time.monotonic()
        try:
            with self.dac.client(timeout=timeout) as client:
                response = client.request(method, path, **kwargs)
            return Outcome(label, started, time.monotonic() - started, response.status_code, response.text,
                           response.headers.get("content-type", ""), headers=dict(response.headers))
        except httpx.HTTPError as exc:
            return Outcome(label, started, time.monotonic() - started, None, error=repr(exc))

    def chat_api(self, label: str = "api", **kwargs) -> Outcome:
        return self.request(label, "POST", f"/api/v1/threads/{self.thread_id}/messages/",
                            json={"content": "write a python function that adds two numbers"}, **kwargs)

    def chat_gateway(self, label: str = "gateway", **kwargs) -> Outcome:
        return self.request(label, "POST", "/v1/chat/completions",
                            json={"model": "auto", "messages": [{"role": "user", "content": "write a python function"}]}, **kwargs)

    def stream_api(self, label: str = "api-sse", timeout: float = 30.0) -> Outcome:
        """SSE from the threads API: the whole body, or what arrived before the client gave up."""
        started, body = time.monotonic(), ""
        try:
            with self.dac.client(timeout=timeout) as client, client.stream(
                "POST", f"/api/v1/threads/{self.thread_id}/messages/", json={"content": "write python code", "stream": True}
            ) as response:
                for text in response.iter_text():
                    body += text
                return Outcome(label, started, time.monotonic() - started, response.status_code, body,
                               response.headers.get("content-type", ""), headers=dict(response.headers))
        except httpx.HTTPError as exc:
            return Outcome(label, started, time.monotonic() - started, None, body, error=repr(exc))

    def quota_requests(self) -> int:
        day = datetime.now(UTC).date().isoformat()
        return int(self.redis.client().hget(f"dac:q:{{org:{self.org_id}}}:openai:{day}", "r") or 0)

    def rows(self, query: str, params: list | None = None) -> list[tuple]:
        return self.pg.sql(query, params)


def _login(dac: DacProcess, email: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=dac.url, timeout=10) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return client.post("/login/", data={"username": email, "password": password, "csrfmiddlewaretoken": token})


@pytest.fixture(scope="module")
def stack():
    base = Path(tempfile.mkdtemp(prefix="dac-faults-"))
    os.chmod(base, 0o755)  # the postgres system user must reach its cluster folder inside
    pg = PgCluster(base)
    redis = RedisServer()
    fake = FakeProvider("openai").start()
    dac = None
    try:
        pg.init().start()
        redis.start()
        dac = DacProcess(base, pg=pg, redis_url=redis.url, extra_env={
            "DAC_ALLOW_PRIVATE_BASE_URLS": "true",  # the fake provider listens on 127.0.0.1
            "QDRANT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there: Qdrant is down all along
            "DB_POOL_TIMEOUT": str(POOL_TIMEOUT),
            # Eight pooled connections are always open (all die with a restart), and no background
            # thread borrows them behind the test's back: metrics flush when their buffer fills,
            # memory indexing waits in its backlog (`manage.py reindex_memory --pending`).
            "DB_POOL_MIN_SIZE": "8",
            "DAC_METRICS_FLUSH_SECONDS": "0",
            "DAC_MEMORY_INDEX_MODE": "queue",
            "DAC_QUOTA_PROBE_SECONDS": "0.5",
            "DAC_PROVIDER_TIMEOUT": "10",
            "LOG_LEVEL": "INFO",
        })
        dac.prepare(email=EMAIL, password=PASSWORD)
        dac.manage("shell", "-c", (
            "from audit.services import Actor\n"
            "from providers.services.keys import provider_key_add\n"
            "from tenants.context import tenant_context\n"
            "from tenants.management.commands._helpers import org_by_slug\n"
            "org = org_by_slug('acme', command='test')\n"
            "with tenant_context(org):\n"
            f"    provider_key_add(org_id=org.id, provider='openai', api_key='sk-faults-0123456789abcdef', base_url='{fake.base_url}', actor=Actor.system('test'))\n"
            "print(org.id)\n"
        ))
        dac.start()
        s = Stack(base, pg, redis, fake, dac)
        s.org_id = s.rows("SELECT id FROM tenants_organization WHERE slug = 'acme'")[0][0]
        created = s.request("thread", "POST", "/api/v1/threads/", json={"title": "faults"})
        assert created.status == 201, created
        s.thread_id = created.json()["id"]
        yield s
    finally:
        if dac is not None:
            dac.stop()
        fake.close()
        redis.kill()
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


# --- Qdrant unreachable (all along) -----------------------------------------------------------


def test_with_qdrant_unreachable_chat_answers_and_memory_work_is_queued_not_lost(stack):
    api, gateway, sse = stack.chat_api(), stack.chat_gateway(), stack.stream_api()
    assert api.status == 201 and api.json()["status"] == "complete", api
    assert gateway.status == 200 and gateway.json()["choices"][0]["message"]["content"], gateway
    assert sse.status == 200 and "event: done" in sse.body, sse
    assert max(api.elapsed, gateway.elapsed, sse.elapsed) < 5, "a down Qdrant must not slow a chat by its timeout"
    log = stack.dac.log_text()
    assert "memory: Qdrant at http://127.0.0.1" in log and "is failing" in log
    assert log.count("is failing") == 1, "the outage is logged once, not once per chat"
    # The answered messages wait in the backlog for Qdrant to return (nothing is dropped).
    time.sleep(0.5)
    saved = {row[0] for row in stack.rows("SELECT id FROM threads_message WHERE status = 'complete'")}
    queued = {row[0] for row in stack.rows("SELECT target_id FROM threads_memorybacklog WHERE kind = 'message'")}
    assert saved and saved <= queued


# --- Redis killed mid-run, started again empty -------------------------------------------------


@pytest.fixture(scope="module")
def redis_run(stack):
    record: dict = {"before": [], "outage": [], "after": []}
    for _ in range(3):
        record["before"].append(stack.chat_api("before"))
    record["counted_before"] = stack.quota_requests()
    stack.redis.kill()
    outage_started = time.monotonic()
    for i in range(6):
        record["outage"].append(stack.chat_api("outage") if i % 2 else stack.chat_gateway("outage"))
    record["outage"].append(stack.stream_api("outage-sse"))
    # Brute force while Redis is down: five wrong passwords, then the right one.
    record["login_failures"] = [_login(stack.dac, EMAIL, "wrong password").status_code for _ in range(6)]
    record["login_after_failures"] = _login(stack.dac, EMAIL, PASSWORD).status_code
    record["outage_seconds"] = time.monotonic() - outage_started
    stack.redis.start()  # same port, empty: nothing was persisted
    time.sleep(1.0)  # past DAC_QUOTA_PROBE_SECONDS
    for i in range(6):
        record["after"].append(stack.chat_api("after") if i % 2 else stack.chat_gateway("after"))
    record["counted_after"] = stack.quota_requests()
    record["log"] = stack.dac.log_text()
    stack.outcomes["redis"] = record["before"] + record["outage"] + record["after"]
    return record


def test_redis_down_chats_go_on_without_delay_and_keep_their_rate_limit_headers(redis_run):
    assert all(o.ok for o in redis_run["before"]), redis_run["before"]
    assert all(o.ok for o in redis_run["outage"]), redis_run["outage"]
    assert all(o.elapsed < 3 for o in redis_run["outage"]), [o.elapsed for o in redis_run["outage"]]
    assert all("x-ratelimit-remaining-requests" in o.headers for o in redis_run["outage"])
    assert "Quota store degraded: Redis unreachable" in redis_run["log"]


def test_redis_back_service_resumes_on_redis_by_itself_and_no_counted_request_is_lost(redis_run):
    assert all(o.ok for o in redis_run["after"]), redis_run["after"]
    assert "Quota store back on Redis" in redis_run["log"]
    assert redis_run["log"].count("Quota store degraded") == 1
    # Every request acknowledged during the outage was counted in PostgreSQL and carried back
    # into the new (empty) Redis: the ledger holds before + outage + after, exactly.
    answered = sum(o.ok for o in redis_run["outage"] + redis_run["after"])
    assert redis_run["counted_after"] == redis_run["counted_before"] + answered


# Found here (issue 11): the throttle counted only in the cache, so it failed open without Redis.
def test_login_brute_force_stays_throttled_while_redis_is_down(redis_run):
    assert redis_run["login_failures"][:5] == [200] * 5
    assert redis_run["login_after_failures"] == 429


# --- PostgreSQL stopped, started, restarted -----------------------------------------------------


def _seconds_until_ok(stack: Stack, patience: float = 20.0) -> float | None:
    """Chat until answers come back on the gateway and on the REST API: how long service took
    to resume (None: it did not). Both, because they reach PostgreSQL differently (the gateway's
    audit append on the worker's own connection, the REST API through the pool, which reconnects
    with a backoff after a restart)."""
    started = time.monotonic()
    while time.monotonic() - started < patience:
        if stack.chat_gateway("recovering", timeout=BOUNDED + 1).ok and stack.chat_api("recovering", timeout=BOUNDED + 1).ok:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


@pytest.fixture(scope="module")
def pg_run(stack, redis_run):  # after the Redis run: it leaves the pool of DAC broken for a while
    stack.fake.behaviour = Behaviour(delay=1.2)  # answers take a while: some are in flight when PostgreSQL goes
    record: dict = {"pid": stack.dac.process.pid}
    record["before"] = [stack.chat_api("before"), stack.chat_gateway("before")]
    messages_before = stack.rows("SELECT count(*) FROM threads_message")[0][0]
    pool = ThreadPoolExecutor(max_workers=6)
    requests_seen = len(stack.fake.requests)
    in_flight = [
        pool.submit(stack.chat_api, "in-flight-api", timeout=IN_FLIGHT_PATIENCE),
        pool.submit(stack.chat_api, "in-flight-api", timeout=IN_FLIGHT_PATIENCE),
        pool.submit(stack.chat_gateway, "in-flight-gateway", timeout=IN_FLIGHT_PATIENCE),
        pool.submit(stack.chat_gateway, "in-flight-gateway", timeout=IN_FLIGHT_PATIENCE),
        pool.submit(stack.stream_api, "in-flight-sse", timeout=IN_FLIGHT_PATIENCE),
    ]
    stack.fake.wait_for_requests(requests_seen + len(in_flight), timeout=10)  # each is past its database work
    stack.fake.behaviour = Behaviour()
    stack.pg.stop()
    stopped = time.monotonic()
    record["outage"] = []
    while time.monotonic() - stopped < 6.0:  # longer than two pool waits: answers cannot be saved in time
        record["outage"].append(stack.chat_gateway("outage-gateway", timeout=20))
        record["outage"].append(stack.chat_api("outage-api", timeout=20))
        record["outage"].append(stack.request("outage-healthz", "GET", "/healthz", timeout=20))
    stack.pg.start()
    record["recovery_seconds"] = _seconds_until_ok(stack)
    record["after_start"] = [stack.chat_api("after-start"), stack.chat_gateway("after-start"), stack.stream_api("after-start-sse")]
    # `pg_ctl restart -m fast` while DAC is idle: every pooled connection dies with it. The REST
    # API borrows from the pool on every call; a warm gateway call may not (cached token and keys).
    stack.pg.restart()
    record["after_idle_restart"] = [
        call(label, timeout=BOUNDED + 1)
        for call, label in [(stack.chat_api, "after-idle-restart-api"), (stack.chat_gateway, "after-idle-restart")] * 2
    ]
    # And again while traffic flows on two other threads.
    flowing: list = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            flowing.append(stack.chat_gateway("during-restart", timeout=BOUNDED + 1))

    runners = [threading.Thread(target=traffic) for _ in range(2)]
    for runner in runners:
        runner.start()
    time.sleep(0.5)
    stack.pg.restart()
    time.sleep(1.5)
    stop.set()
    for runner in runners:
        runner.join(30)
    record["during_restart"] = flowing
    record["recovery_after_restart_seconds"] = _seconds_until_ok(stack)
    record["after_restart"] = [stack.chat_api("after-restart"), stack.chat_gateway("after-restart"), stack.stream_api("after-restart-sse")]
    record["in_flight"] = [future.result(timeout=60) for future in in_flight]
    pool.shutdown(wait=False, cancel_futures=True)
    time.sleep(1.0)  # answers finishing in the background settle
    record["messages_before"] = messages_before
    record["statuses"] = stack.rows("SELECT role, status, error_category, count(*) FROM threads_message GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    record["streaming"] = stack.rows("SELECT id, seq FROM threads_message WHERE status = 'streaming'")
    record["orphans"] = stack.rows(
        "SELECT u.id FROM threads_message u WHERE u.role = 'user' AND NOT EXISTS ("
        " SELECT 1 FROM threads_message a WHERE a.thread_id = u.thread_id AND a.seq = u.seq + 1 AND a.role = 'assistant')"
    )
    record["log"] = stack.dac.log_text()
    record["alive"] = stack.dac.process.poll() is None and stack.dac.process.pid == record["pid"]
    stack.outcomes["postgres"] = [*record["before"], *record["outage"], *record["after_start"], *record["after_restart"], *record["in_flight"]]
    return record


def test_postgres_down_requests_fail_fast_with_a_5xx_not_a_hang(pg_run):
    assert all(o.ok for o in pg_run["before"]), pg_run["before"]
    outage = pg_run["outage"]
    assert outage, "no request was made during the outage"
    assert all(o.status is not None and 500 <= o.status < 600 for o in outage), [(o.label, o.status, o.error) for o in outage]
    assert all(o.elapsed < BOUNDED for o in outage), [(o.label, round(o.elapsed, 2)) for o in outage]
    healthz = [o for o in outage if o.label == "outage-healthz"]
    assert healthz and all(o.status == 503 and o.json() == {"status": "degraded", "database": "unavailable"} for o in healthz)


# Found here (issue 11): a database outage was Django's bare HTML 500 on /api/v1 and /v1.
def test_postgres_down_errors_keep_the_api_error_shapes_and_say_503(pg_run):
    for o in pg_run["outage"]:
        if o.label == "outage-api":
            assert o.status == 503 and set(o.json()["error"]) == {"code", "message", "detail"}, o
        if o.label == "outage-gateway":
            assert o.status == 503 and set(o.json()["error"]) == {"message", "type", "param", "code"}, o


def test_postgres_back_service_resumes_without_restarting_dac(pg_run):
    assert pg_run["alive"], "DAC had to be restarted"
    assert pg_run["recovery_seconds"] is not None and pg_run["recovery_seconds"] < 10, pg_run["recovery_seconds"]
    assert all(o.ok for o in pg_run["after_start"]), pg_run["after_start"]
    assert all(o.ok for o in pg_run["after_restart"]), pg_run["after_restart"]
    sse = pg_run["after_restart"][-1]
    assert "event: done" in sse.body


def test_postgres_restart_under_traffic_fails_only_briefly_and_recovers_by_itself(pg_run):
    flowing = pg_run["during_restart"]
    answered = [o for o in flowing if o.status is not None]  # a hang here is the in-flight bug below
    assert answered and all(o.ok or o.status >= 500 for o in answered), [(o.status, round(o.elapsed, 2)) for o in flowing]
    assert all(o.elapsed < BOUNDED for o in answered)
    assert pg_run["recovery_after_restart_seconds"] is not None and pg_run["recovery_after_restart_seconds"] < 10
    assert all(o.ok for o in pg_run["after_restart"]), pg_run["after_restart"]


# Found here (issue 11): the pool handed out connections that died with the restart (now checked on
# checkout). Then (issue 10): checked one by one, eight dead ones outlasted DB_POOL_TIMEOUT (now a
# failed check sweeps the idle pool; tests/reliability/test_pool_restart.py).
def test_the_first_request_after_a_postgres_restart_succeeds(pg_run):
    assert all(o.ok for o in pg_run["after_idle_restart"]), pg_run["after_idle_restart"]


def test_postgres_outage_leaves_no_user_message_without_its_answer_row(pg_run):
    # The user message and the assistant placeholder are written in one transaction.
    assert pg_run["orphans"] == []


# Found here (issue 11): answers in flight hung (then: HTML 500, SSE cut without 'failed') and their rows stayed
# 'streaming' forever.
def test_postgres_outage_answers_in_flight_end_with_a_clear_error_and_no_row_stays_streaming(pg_run):
    for o in pg_run["in_flight"] + pg_run["during_restart"]:
        assert o.status is not None, f"{o.label} got no whole answer (hung or cut): {o.error}"
        assert o.elapsed < IN_FLIGHT_PATIENCE, (o.label, o.elapsed)
        assert o.ok or o.status >= 500
        if o.label.endswith("sse"):
            assert "event: done" in o.body or "event: failed" in o.body, o.body[-300:]
    assert pg_run["streaming"] == []
