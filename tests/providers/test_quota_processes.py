"""Quotas hold exactly across worker processes: on Redis, on the PostgreSQL fallback, and when
Redis is killed in the middle of a run and started again (empty).

Each worker is this module run as `python -m tests.providers.test_quota_processes <config>`:
it sets Django up against the test database, reserves in a loop and prints what it got. That
is why nothing at the top of this module imports Django.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4


def _worker(config: dict) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "dac.settings_test"
    os.environ["DB_POOL"] = "false"
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    for alias in ("default", "owner"):
        settings.DATABASES[alias]["NAME"] = config["db"]
        connections[alias].settings_dict["NAME"] = config["db"]

    from providers.services.quota import QuotaExceeded, QuotaService

    service = QuotaService(redis_url=config["redis_url"], probe_interval=config.get("probe_interval", 2.0))
    service.limits(org_id=config["org_id"], provider="openai")  # warm the connection and the cache
    print("ready", flush=True)
    sys.stdin.readline()  # start together: the parent says go
    ok = released = refused = 0
    stores: list[str] = []
    stop_file = config.get("stop_file")
    deadline = time.monotonic() + config.get("seconds", 30)
    for attempt in range(config["attempts"]):
        if time.monotonic() > deadline or (stop_file and os.path.exists(stop_file)):
            break
        try:
            reservation = service.reserve(org_id=config["org_id"], provider="openai", estimated_tokens=10)
        except QuotaExceeded:
            refused += 1
        else:
            if not stores or stores[-1] != reservation.store:
                stores.append(reservation.store)
            if config.get("release_every") and attempt % config["release_every"] == 0:
                service.release(reservation)  # a failed call
                released += 1
            else:
                service.reconcile(reservation, actual_tokens=7)
                ok += 1
        if config.get("pause"):
            time.sleep(config["pause"])
    print(json.dumps({"ok": ok, "released": released, "refused": refused, "stores": stores}), flush=True)


def _spawn(config: dict, stderr_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.providers.test_quota_processes", json.dumps(config)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_path.open("w"), text=True,
    )


class Workers:
    """Start N workers, wait until all are ready, release them together; always cleaned up."""

    def __init__(self, configs: list[dict], tmp_path: Path) -> None:
        self.stderr = [tmp_path / f"worker{i}.log" for i in range(len(configs))]
        self.processes = [_spawn(config, path) for config, path in zip(configs, self.stderr, strict=True)]

    def go(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for process, log in zip(self.processes, self.stderr, strict=True):
            while not select.select([process.stdout], [], [], 0.1)[0]:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "worker did not get ready"
            assert process.stdout.readline().strip() == "ready", log.read_text()
        for process in self.processes:
            process.stdin.write("go\n")
            process.stdin.flush()

    def results(self, timeout: float = 60) -> list[dict]:
        results = []
        for process, log in zip(self.processes, self.stderr, strict=True):
            out, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0, log.read_text()
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    def logs(self) -> list[str]:
        return [path.read_text() for path in self.stderr]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(tmp_path):
    started: list[Workers] = []

    def start(configs: list[dict]) -> Workers:
        group = Workers(configs, tmp_path)
        started.append(group)
        return group

    yield start
    for group in started:
        group.close()


def _set_requests_limit(org, limit: int) -> None:
    from audit.services import Actor
    from providers.services.limits import quota_limit_set
    from tenants.context import tenant_context

    with tenant_context(org):
        quota_limit_set(org_id=org.id, requests_per_day=limit, tokens_per_day=10_000_000, actor=Actor.system("test"))


def _config(org, redis_url: str, **extra) -> dict:
    from django.conf import settings

    return {"db": settings.DATABASES["default"]["NAME"], "redis_url": redis_url, "org_id": org.id, **extra}


def _key(org) -> str:
    from datetime import UTC, datetime

    return f"dac:q:{{org:{org.id}}}:openai:{datetime.now(UTC).date().isoformat()}"


@pytest.mark.django_db(transaction=True)
def test_with_a_limit_of_137_exactly_137_of_400_concurrent_calls_from_4_processes_succeed_on_redis(org_a, workers):
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        _set_requests_limit(org_a, 137)
        group = workers([_config(org_a, server.url, attempts=100) for _ in range(WORKERS)])
        group.go()
        results = group.results()
        assert sum(r["ok"] for r in results) == 137
        assert sum(r["refused"] for r in results) == 400 - 137
        assert all(r["stores"] == ["redis"] for r in results if r["ok"])
        assert server.client().hmget(_key(org_a), "r", "t") == ["137", str(137 * 7)]
    finally:
        server.kill()


@pytest.mark.django_db(transaction=True)
def test_with_a_limit_of_137_exactly_137_of_400_concurrent_calls_from_4_processes_succeed_on_the_postgres_fallback(org_a, workers):
    from providers.models import QuotaCounter
    from tenants.context import tenant_context
    from tests.servers import free_port

    _set_requests_limit(org_a, 137)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every worker falls back
    group = workers([_config(org_a, nowhere, attempts=100) for _ in range(WORKERS)])
    group.go()
    results = group.results()
    assert sum(r["ok"] for r in results) == 137
    assert sum(r["refused"] for r in results) == 400 - 137
    assert all(r["stores"] == ["postgres"] for r in results if r["ok"])
    with tenant_context(org_a):
        row = QuotaCounter.objects.get(provider="openai")
    assert (row.base_requests + row.requests, row.base_tokens + row.tokens) == (137, 137 * 7)
    assert all(log.count("Quota store degraded") == 1 for log in group.logs())


@pytest.mark.django_db(transaction=True)
def test_killing_redis_mid_run_keeps_counting_exactly_in_postgres_and_carries_the_counts_back(org_a, workers, tmp_path):
    from providers.models import QuotaCounter
    from tenants.context import tenant_context
    from tests.servers import RedisServer

    limit = 1200
    server = RedisServer().start()
    stop_file = tmp_path / "stop"
    try:
        _set_requests_limit(org_a, limit)
        # At most 4 x 100 attempts a second, a tenth of them released (failed calls): the limit
        # cannot be reached before Redis is back.
        config = _config(org_a, server.url, attempts=100_000, pause=0.01, release_every=10,
                         probe_interval=0.5, stop_file=str(stop_file), seconds=40)
        group = workers([config] * WORKERS)
        group.go()
        time.sleep(1.0)
        before_kill = int(server.client().hget(_key(org_a), "r"))
        assert 0 < before_kill < limit
        server.kill()
        time.sleep(1.5)
        with tenant_context(org_a):
            row = QuotaCounter.objects.get(provider="openai")
        assert row.requests > 0 and not row.moved  # counting in PostgreSQL meanwhile
        assert row.base_requests + row.requests < limit
        server.start()  # empty: no persistence, the counts come back from PostgreSQL
        deadline = time.monotonic() + 30
        client = server.client()
        while int(client.hget(_key(org_a), "r") or 0) < limit:
            assert time.monotonic() < deadline, "the limit was never reached"
            time.sleep(0.05)
        time.sleep(0.3)  # every worker meets the limit
        stop_file.touch()
        results = group.results()
        final = client.hmget(_key(org_a), "r", "t")
    finally:
        server.kill()
    # Released calls gave their request back: exactly `limit` calls were kept, no more, no fewer.
    assert sum(r["ok"] for r in results) == limit
    assert final == [str(limit), str(limit * 7)]
    assert all(r["stores"] == ["redis", "postgres", "redis"] for r in results), results
    for log in group.logs():
        assert log.count("Quota store degraded") == 1, log
        assert log.count("Quota store back on Redis") == 1, log
    with tenant_context(org_a):
        assert QuotaCounter.objects.get(provider="openai").moved


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
