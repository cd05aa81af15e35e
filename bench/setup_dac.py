"""Prepare the dev database for a gateway benchmark and print what the load generator needs.

    .venv/bin/python bench/setup_dac.py --base-url http://127.0.0.1:9300/v1     # prints JSON

Run with the environment the benchmarked server gets (bench/run.py does that: same SECRET_KEY and
DAC_ENCRYPTION_KEYS, DAC_ALLOW_PRIVATE_BASE_URLS=true). Through the services, like the manage.py
commands: the org `dac-bench` (made once and reused: orgs cannot be deleted, their audit chain
is append-only) and `dac-bench-floor` (whose chain bench/floor.py writes), a new API token, an
`openai_compatible` key pointing at the fake upstream as the active key (default model
`bench-model`, so `model: "auto"` routes to it), and the org's daily limits lifted to the maximum
so quota never refuses a benchmark request (it still counts each).

Then, as the owner role, `VACUUM (ANALYZE)` of the app's tables: what autovacuum does in production.
Without it (autovacuum is off on some dev servers, this one included) the planner keeps its
empty-table statistics and, under RLS, reads an org's whole audit chain to find its last row:
the append gets slower with every request (19 ms at 31k rows here, 0.05 ms once analyzed).
`--no-vacuum` skips it, to measure that state.

Before that, on a database fresh from `make db`, the floor org's chain gets `bench.fill` events
until the audit table holds FILL_ROWS rows. The statistics of a near-empty table make each
connection's cached plan for the append's head lookup a sequential scan, kept for the
connection's life (nothing re-analyzes with autovacuum off): the first run on a fresh machine
measured the floor at +12.5 ms (100 ms upstream) and +2.4 ms (at once), against +2.1 / +0.8
from the second run on. A database in use holds rows; with them the plans use the index.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")

import django  # noqa: E402

django.setup()

from audit.models import AuditLog  # noqa: E402
from audit.services import Actor, AuditEvent, audit_records  # noqa: E402
from providers.models import MAX_REQUESTS_PER_DAY, MAX_TOKENS_PER_DAY  # noqa: E402
from providers.services.keys import provider_key_add  # noqa: E402
from providers.services.limits import quota_limit_set  # noqa: E402
from tenants.context import operator_context, tenant_context  # noqa: E402
from tenants.models import Organization  # noqa: E402
from tenants.services import api_token_create, org_create  # noqa: E402

SLUG = "dac-bench"
FLOOR_SLUG = "dac-bench-floor"  # bench/floor.py writes this org's audit chain
ACTOR = Actor.system("bench/setup_dac.py")
FILL_ROWS = 20_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the fake upstream, e.g. http://127.0.0.1:9300/v1")
    parser.add_argument("--slug", default=SLUG)
    parser.add_argument("--no-vacuum", action="store_true")
    args = parser.parse_args()

    org = _org(args.slug, "Gateway benchmark")
    floor_org = _org(FLOOR_SLUG, "Gateway benchmark: the floor")
    with tenant_context(org):
        token = api_token_create(org_id=org.id, name=f"bench {time.strftime('%Y-%m-%d %H:%M:%S')}", created_by=None, actor=ACTOR)
        key = provider_key_add(org_id=org.id, provider="openai_compatible", api_key="sk-bench-upstream-dummy",
                               label="bench upstream", base_url=args.base_url, default_model="bench-model", actor=ACTOR)
        quota_limit_set(org_id=org.id, requests_per_day=MAX_REQUESTS_PER_DAY, tokens_per_day=MAX_TOKENS_PER_DAY, actor=ACTOR)
    if not args.no_vacuum:
        fill(floor_org)
        vacuum()
    print(json.dumps({"org_id": org.id, "slug": org.slug, "token": token.plaintext, "key_id": key.pk, "floor_org_id": floor_org.id}))


def _org(slug: str, name: str) -> Organization:
    """The org with this slug, made the first time (orgs are kept: their audit chain is append-only)."""
    with operator_context(reason="bench/setup_dac.py: find the benchmark orgs", actor="bench"):
        org = Organization.objects.filter(slug=slug).first()
    return org or org_create(name=name, slug=slug, actor=ACTOR)


def fill(org: Organization) -> None:
    """`bench.fill` events on the org's chain until the audit table holds FILL_ROWS rows."""
    with operator_context(reason="bench/setup_dac.py: count the audit table's rows", actor="bench"):
        missing = FILL_ROWS - AuditLog.objects.count()
    event = AuditEvent("bench.fill", "bench", {"why": "rows for the planner's statistics (bench/setup_dac.py)"})
    with tenant_context(org):
        while missing > 0:
            audit_records(org_id=org.id, actor=ACTOR, events=[event] * min(missing, 1000))
            missing -= 1000


def vacuum() -> None:
    from django.db import connections

    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND pg_get_userbyid(c.relowner) = current_user"
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'VACUUM (ANALYZE) "{table}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
