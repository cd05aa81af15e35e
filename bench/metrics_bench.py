"""Benchmarks of the observability paths, against the dev database (`dac`, migrated).

    .venv/bin/python bench/metrics_bench.py            # both
    .venv/bin/python bench/metrics_bench.py audit      # audit_record cost
    .venv/bin/python bench/metrics_bench.py metrics    # usage API with 1,000,000 stored requests

audit: times `audit_record` (one committed, chained append) N times into one org's chain, then
round-robin over many orgs' chains, then from several threads into one chain (the per-org lock
serializes them), and reports p50/p99/mean.

metrics: bulk-loads ROWS request rows (and ROWS/10 provider calls) spread over the last 7 days
into a throwaway org (one INSERT … SELECT generate_series as the owner role; raw retention is
raised so every row stays stored), rolls it up once (what the flusher/cron does), then times
the usage API endpoints and page in-process (Django test client, as a signed-in member), and
the read that also has to run a due rollup.

Everything is made in throwaway orgs (slug bench-…) and deleted at the end (as the owner:
their audit chains go with them; no other chain is touched). Uses DATABASE_URL and
DATABASE_OWNER_URL like the app.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")
if "SECRET_KEY" not in os.environ:
    import secrets

    from cryptography.fernet import Fernet

    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ.setdefault("DAC_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("DAC_HTTPS", "false")
# Keep all loaded rows stored (the point is "1M stored requests"), and keep the bench's own
# requests out of the tables it measures.
os.environ["DAC_METRICS_RAW_RETENTION_HOURS"] = "200"
os.environ["DAC_METRICS_STORE"] = "false"

import django  # noqa: E402

django.setup()

from django.db import connections  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
AUDIT_N = int(os.environ.get("BENCH_AUDIT_N", "2000"))
AUDIT_ORGS = int(os.environ.get("BENCH_AUDIT_ORGS", "50"))
AUDIT_THREADS = int(os.environ.get("BENCH_AUDIT_THREADS", "8"))
API_REPEAT = int(os.environ.get("BENCH_API_REPEAT", "20"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def report(name: str, ms: list[float]) -> None:
    print(f"  {name:<58} n={len(ms):<6} p50={pct(ms, .5):7.2f} ms  p99={pct(ms, .99):7.2f} ms  mean={statistics.fmean(ms):7.2f} ms  max={max(ms):7.2f} ms")


def owner():
    cursor = connections["owner"].cursor()
    cursor.execute("SELECT set_config('app.operator', 'on', false)")
    return cursor


def make_orgs(n: int) -> list[int]:
    tag = uuid.uuid4().hex[:8]
    with owner() as cursor:
        ids = []
        for i in range(n):
            cursor.execute(
                "INSERT INTO tenants_organization (name, slug, context_window, is_demo, created_at)"
                " VALUES (%s, %s, 6, false, now()) RETURNING id",
                [f"Bench {tag} {i}", f"bench-{tag}-{i}"],
            )
            ids.append(cursor.fetchone()[0])
    return ids


def drop_orgs(ids: list[int], users: list[int] = (), sessions: list[str] = ()) -> None:
    tables = [
        "audit_auditlog", "metrics_requestmetric", "metrics_providercallmetric", "metrics_requestrollup",
        "metrics_providerrollup", "metrics_rollupstate", "tenants_membership",
    ]
    with owner() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {table} WHERE org_id = ANY(%s)", [ids])
        cursor.execute("DELETE FROM tenants_organization WHERE id = ANY(%s)", [ids])
        if sessions:
            cursor.execute("DELETE FROM django_session WHERE session_key = ANY(%s)", [list(sessions)])
        if users:
            cursor.execute("DELETE FROM tenants_user WHERE id = ANY(%s)", [list(users)])


# --- audit ----------------------------------------------------------------------------------


def bench_audit() -> None:
    from audit.selectors import audit_chain_status
    from audit.services import Actor, audit_record
    from tenants.context import tenant_context

    print(f"\naudit_record: {AUDIT_N} appends, each its own committed transaction")
    orgs = make_orgs(AUDIT_ORGS)
    actor = Actor.system("bench")
    details = {"provider": "openai", "model": "gpt-4o-mini", "outcome": "ok", "latency_ms": 812, "input_tokens": 120, "output_tokens": 380}
    try:
        for _ in range(50):  # warm the pool and the plan cache
            audit_record(org_id=orgs[1], actor=actor, event="bench.warmup", details=details)

        def timed(org_id: int) -> float:
            started = time.perf_counter()
            with tenant_context(org_id):
                audit_record(org_id=org_id, actor=actor, event="provider.call", target="provider:openai",
                             details=details, request_hash="a" * 64, response_hash="b" * 64)
            return (time.perf_counter() - started) * 1000

        report("one org's chain", [timed(orgs[0]) for _ in range(AUDIT_N)])
        report(f"round-robin over {AUDIT_ORGS} orgs' chains", [timed(orgs[i % AUDIT_ORGS]) for i in range(AUDIT_N)])

        results: list[float] = []
        lock = threading.Lock()

        def worker(count: int) -> None:
            mine = [timed(orgs[2]) for _ in range(count)]
            with lock:
                results.extend(mine)
            connections.close_all()

        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(AUDIT_N // AUDIT_THREADS,)) for _ in range(AUDIT_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        report(f"{AUDIT_THREADS} threads into one org's chain (contended)", results)
        print(f"  {'':<58} throughput {len(results) / elapsed:,.0f} appends/s into one chain")

        for org_id in (orgs[0], orgs[2]):
            with tenant_context(org_id):
                started = time.perf_counter()
                status = audit_chain_status(org_id=org_id)
                took = time.perf_counter() - started
            assert status.ok, status.broken
            print(f"  verify: chain of {status.count} rows intact, walked in {took * 1000:.0f} ms ({status.count / took:,.0f} rows/s)")
    finally:
        drop_orgs(orgs)


# --- metrics --------------------------------------------------------------------------------

LOAD_REQUESTS = """
INSERT INTO metrics_requestmetric (org_id, ts, method, route, status, latency_ms, error_class)
SELECT %(org)s,
       now() - (random() * interval '7 days'),
       (ARRAY['GET','GET','GET','POST'])[1 + (i %% 4)],
       '/bench/route-' || (i %% 20) || '/<int:id>/',
       s.status,
       exp(ln(20) + 0.9 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())),
       CASE WHEN s.status = 200 THEN '' WHEN s.status = 400 THEN 'dac_validation'
            WHEN s.status = 429 THEN 'dac_quota' WHEN s.status = 502 THEN 'timeout' ELSE 'dac_internal' END
FROM generate_series(1, %(n)s) AS i,
     LATERAL (SELECT CASE WHEN random() < 0.95 THEN 200 WHEN random() < 0.5 THEN 400
                          WHEN random() < 0.5 THEN 429 WHEN random() < 0.5 THEN 502 ELSE 500 END AS status
              WHERE i > 0) AS s
"""
LOAD_CALLS = """
INSERT INTO metrics_providercallmetric
    (org_id, ts, provider, model, outcome, latency_ms, first_token_ms, input_tokens, output_tokens, streamed, cost_usd)
SELECT %(org)s, now() - (random() * interval '7 days'),
       (ARRAY['openai','perplexity','gemini','openrouter'])[1 + (i %% 4)],
       (ARRAY['gpt-4o-mini','sonar','gemini-2.5-flash','openrouter/auto'])[1 + (i %% 4)],
       CASE WHEN random() < 0.97 THEN 'ok' ELSE 'timeout' END,
       400 + random() * 4000, 200 + random() * 600, 200 + (random() * 800)::int, 100 + (random() * 600)::int,
       true, random() * 0.002
FROM generate_series(1, %(n)s) AS i
"""


def bench_hot_path() -> None:
    """What recording costs the request path: an append to the in-process buffer."""
    from django.test import override_settings

    from metrics.buffer import MetricsBuffer, set_buffer
    from metrics.services import provider_call_record, request_record

    print("\nmetrics hot path (no database: rows go to the in-process buffer)")
    [org_id] = make_orgs(1)
    try:
        with override_settings(DAC_METRICS_STORE=True, DAC_METRICS_FLUSH_ROWS=10**9, DAC_METRICS_BUFFER_MAX_ROWS=10**9):
            buffer = MetricsBuffer(background=False)
            previous = set_buffer(buffer)
            try:
                n = 100_000
                started = time.perf_counter()
                for i in range(n):
                    request_record(org_id=org_id, method="GET", route=f"/bench/{i % 20}/", status=200, latency_ms=12.5, error_class="")
                per_request = (time.perf_counter() - started) / n * 1e6
                started = time.perf_counter()
                for _ in range(n // 10):
                    provider_call_record(org_id=org_id, provider="openai", model="gpt-4o-mini", outcome="ok", latency_ms=800,
                                         first_token_ms=150, input_tokens=100, output_tokens=300, streamed=True)
                per_call = (time.perf_counter() - started) / (n // 10) * 1e6
                print(f"  request_record: {per_request:.1f} µs per request; provider_call_record: {per_call:.1f} µs per call")
                rows = buffer._requests
                ms = []
                for i in range(6):
                    buffer._requests, buffer._calls = rows[i * 500:(i + 1) * 500], []
                    started = time.perf_counter()
                    buffer.flush()
                    ms.append((time.perf_counter() - started) * 1000)
                report("flush of 500 rows (one INSERT … SELECT unnest, off the request path)", ms[1:])
            finally:
                set_buffer(previous)
    finally:
        drop_orgs([org_id])


def bench_metrics() -> None:
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from metrics.models import RollupState
    from metrics.services import metrics_rollup_org
    from tenants.context import tenant_context
    from tenants.models import User

    setup_test_environment()
    print(f"\nusage API with {ROWS:,} stored requests (+{ROWS // 10:,} provider calls) over 7 days in one org")
    [org_id] = make_orgs(1)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.invalid"
    user = User.objects.create_user(email=email, password=None)
    sessions: list[str] = []
    try:
        with owner() as cursor:
            cursor.execute(
                "INSERT INTO tenants_membership (org_id, user_id, role, created_at) VALUES (%s, %s, 'member', now())",
                [org_id, user.pk],
            )
            started = time.perf_counter()
            cursor.execute(LOAD_REQUESTS, {"org": org_id, "n": ROWS})
            cursor.execute(LOAD_CALLS, {"org": org_id, "n": ROWS // 10})
            cursor.execute("ANALYZE metrics_requestmetric")
            cursor.execute("ANALYZE metrics_providercallmetric")
            print(f"  loaded in {time.perf_counter() - started:.1f} s (INSERT … SELECT generate_series)")
            cursor.execute("SELECT count(*) FROM metrics_requestmetric WHERE org_id = %s", [org_id])
            stored = cursor.fetchone()[0]
            print(f"  stored raw request rows for the org: {stored:,}")

        with tenant_context(org_id):
            started = time.perf_counter()
            metrics_rollup_org(org_id=org_id, force=True)
            print(f"  first rollup of all of it (once; the flusher/cron keep it incremental): {time.perf_counter() - started:.1f} s")
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT resolution, count(*) FROM metrics_requestrollup WHERE org_id = %s GROUP BY 1 ORDER BY 1", [org_id])
                print("  request rollup rows (resolution s, rows):", cursor.fetchall())

        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        sessions.append(client.session.session_key)
        endpoints = [
            f"/api/v1/usage/{name}/?window={window}"
            for window in ("1h", "24h", "7d")
            for name in ("summary", "paths", "providers", "errors", "timeseries")
        ] + ["/usage/?window=7d", "/usage/?window=24h"]
        over = []
        for url in endpoints:
            client.get(url)  # warm
            ms = []
            for _ in range(API_REPEAT):
                started = time.perf_counter()
                response = client.get(url)
                ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code, response.content[:300])
            report(url, ms)
            if pct(ms, 0.99) >= 200:
                over.append(url)

        # A read that must first roll up: the last 6 minutes got ~700 rows a minute, and the
        # state says the last rollup was 2 minutes ago.
        with owner() as cursor:
            cursor.execute(LOAD_REQUESTS.replace("random() * interval '7 days'", "random() * interval '6 minutes'"), {"org": org_id, "n": 4200})
        ms = []
        for _ in range(5):
            with tenant_context(org_id):
                RollupState.objects.filter(org_id=org_id).update(updated_at=timezone.now() - timezone.timedelta(minutes=2))
            started = time.perf_counter()
            response = client.get("/api/v1/usage/summary/?window=7d")
            ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        report("/api/v1/usage/summary/?window=7d with a rollup due", ms)

        with tenant_context(org_id), connections["default"].cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) FROM metrics_requestmetric WHERE org_id = %s",
                [org_id],
            )
            exact = cursor.fetchone()[0]
            print(f"  for comparison, exact percentiles by scanning all raw rows: {(time.perf_counter() - started) * 1000:.0f} ms")
        summary = client.get("/api/v1/usage/summary/?window=7d").json()["requests"]
        print(f"  exact p50/p95/p99 {[round(v, 1) for v in exact]} ms vs histogram {[summary['p50_ms'], summary['p95_ms'], summary['p99_ms']]} ms")
        print("  all endpoints under 200 ms at p99" if not over else f"  OVER 200 ms at p99: {over}")
    finally:
        drop_orgs([org_id], [user.pk], sessions)


if __name__ == "__main__":
    which = sys.argv[1:] or ["audit", "metrics"]
    if "audit" in which:
        bench_audit()
    if "metrics" in which:
        bench_hot_path()
        bench_metrics()
