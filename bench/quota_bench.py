"""What one quota check costs: p50/p99 of reserve+reconcile and of reserve alone, on Redis
(the configured REDIS_URL, through django-redis) and on the PostgreSQL fallback.

    DEBUG=1 .venv/bin/python bench/quota_bench.py [--calls 10000]

Runs against the dev database (`make db`) as the runtime role. It creates a throw-away org
under a random slug (orgs cannot be deleted: their audit chain is append-only), lifts its limits
so nothing is refused, measures, and deletes the org's counters afterwards. The fallback is
measured with a service whose Redis URL points at a port where nothing listens, so it degrades
on the first call exactly as it would in an outage. Django's query log (DEBUG) is switched off
for the measurement, as in production.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from audit.services import Actor  # noqa: E402
from providers.adapters import PROVIDER_NAMES  # noqa: E402
from providers.models import MAX_REQUESTS_PER_DAY, MAX_TOKENS_PER_DAY, QuotaCounter  # noqa: E402
from providers.quota_store import key_tests_bucket  # noqa: E402
from providers.services.limits import quota_limit_set  # noqa: E402
from providers.services.quota import QuotaService  # noqa: E402
from tenants.context import tenant_context  # noqa: E402
from tenants.services import org_create  # noqa: E402


def measure(operation, calls: int) -> list[float]:
    for _ in range(min(200, calls)):  # warm: scripts loaded, connections open, limits cached
        operation()
    timings = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        operation()
        timings.append((clock() - start) / 1000)
    return timings


def row(store: str, label: str, timings: list[float]) -> str:
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return (f"{store:<9} {label:<18} {cuts[49]:>9.0f} {cuts[98]:>9.0f} {max(timings):>9.0f}"
            f" {len(timings) / (sum(timings) / 1e6):>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    calls = parser.parse_args().calls
    settings.DEBUG = False  # no query log while measuring

    org = org_create(name="Quota benchmark", slug=f"quota-bench-{secrets.token_hex(4)}", actor=Actor.system("quota_bench"))
    with tenant_context(org):
        quota_limit_set(org_id=org.id, requests_per_day=MAX_REQUESTS_PER_DAY, tokens_per_day=MAX_TOKENS_PER_DAY, actor=Actor.system("quota_bench"))
    stores = {
        "redis": QuotaService(),
        "postgres": QuotaService(redis_url="redis://127.0.0.1:1/0"),  # nothing listens on port 1
    }
    lines = []
    try:
        with tenant_context(org):
            for name, service in stores.items():
                def reserve(service=service):
                    return service.reserve(org_id=org.id, provider="openai", estimated_tokens=1100)

                def check(service=service):
                    service.reconcile(reserve(service), actual_tokens=350)

                check()
                assert service.state()["backend"] == name, service.state()
                lines.append(row(name, "reserve+reconcile", measure(check, calls)))
                lines.append(row(name, "reserve", measure(reserve, calls)))
    finally:
        with tenant_context(org):
            QuotaCounter.objects.filter(org_id=org.id).delete()
            service = stores["redis"]
            keys = [service.redis.key(org.id, bucket, day)
                    for bucket in [*PROVIDER_NAMES, *(key_tests_bucket(h) for h in range(24))]
                    for day in {day for (_, _, day) in service.redis.seen} | {time.strftime("%Y-%m-%d", time.gmtime())}]
            service.redis.client.delete(*keys)

    print(f"Quota check cost, {calls:,} calls each, microseconds (org {org.slug}, counters deleted after)")
    print(f"Redis: {settings.REDIS_URL} via django-redis; PostgreSQL: {settings.DATABASES['default']['HOST']}")
    print(f"{'store':<9} {'operation':<18} {'p50':>9} {'p99':>9} {'max':>9} {'calls/s':>10}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
