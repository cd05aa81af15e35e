"""Quota counters in PostgreSQL (`providers_quotacounter`): the fallback while Redis is down.

Each reservation is one statement, `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE used + x <=
limit RETURNING`: PostgreSQL locks the row, re-evaluates the WHERE against its latest version
and either counts or refuses, so the limit holds across any number of workers. The table has
forced row-level security; per-org statements run in that org's tenant context, the few that
span orgs (seeding at the switch, carrying rows back into Redis) in an audited operator context.

A row's count is `base_* + requests/tokens`: the base is what Redis held at the switch, the rest
was counted here. A row marked `moved` has been carried into Redis by some worker: a worker
still on the fallback that meets one learns that Redis is back.
"""

from __future__ import annotations

from django.db import connections, transaction

from providers.quota_store import MOVED, OK, OVER_REQUESTS, OVER_TOKENS, CounterRow, Counts, Outcome
from tenants.context import operator_context, tenant_context

TABLE = "providers_quotacounter"
_COLUMNS = "org_id, provider, day, base_requests, base_tokens, base_version, requests, tokens, moved, overwrite, updated_at"

_RESERVE = f"""
INSERT INTO {TABLE} AS c ({_COLUMNS})
VALUES (%s, %s, %s, 0, 0, 0, 1, %s, false, false, now())
ON CONFLICT (org_id, provider, day) DO UPDATE
   SET requests = c.requests + 1, tokens = c.tokens + EXCLUDED.tokens, updated_at = now()
 WHERE NOT c.moved
   AND c.base_requests + c.requests + 1 <= %s
   AND c.base_tokens + c.tokens + EXCLUDED.tokens <= %s
RETURNING c.base_requests + c.requests, c.base_tokens + c.tokens
"""

# Reconcile and release: signed deltas, so a call reserved on Redis before the switch can give
# back here what it took there.
_ADJUST = f"""
INSERT INTO {TABLE} AS c ({_COLUMNS})
VALUES (%s, %s, %s, 0, 0, 0, %s, %s, false, false, now())
ON CONFLICT (org_id, provider, day) DO UPDATE
   SET requests = c.requests + EXCLUDED.requests, tokens = c.tokens + EXCLUDED.tokens, updated_at = now()
 WHERE NOT c.moved
RETURNING c.base_requests + c.requests, c.base_tokens + c.tokens
"""

_READ = f"SELECT base_requests + requests, base_tokens + tokens, moved FROM {TABLE} WHERE org_id = %s AND provider = %s AND day = %s"

# A worker still on the fallback met a moved row and could not reach Redis: it takes the row
# back. A moved row holds what Redis held after the carry-over (counted = 0); the worker's own
# view replaces it when fresher.
_CLAIM = f"""
UPDATE {TABLE}
   SET base_requests = CASE WHEN %s > base_version THEN %s ELSE base_requests END,
       base_tokens = CASE WHEN %s > base_version THEN %s ELSE base_tokens END,
       base_version = GREATEST(base_version, %s),
       moved = false, overwrite = false, updated_at = now()
 WHERE org_id = %s AND provider = %s AND day = %s AND moved
"""

# At the switch each worker writes its view of Redis as the rows' base; the freshest view (by
# version) wins, whichever worker writes first. A reset made during the outage (overwrite) is
# not undone by any view.
_SEED = f"""
INSERT INTO {TABLE} AS c ({_COLUMNS})
SELECT o, p, d, r, t, v, 0, 0, false, false, now()
  FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::bigint[], %s::bigint[], %s::bigint[]) AS s(o, p, d, r, t, v)
ON CONFLICT (org_id, provider, day) DO UPDATE SET
   base_requests = CASE WHEN c.overwrite AND NOT c.moved THEN c.base_requests
                        WHEN EXCLUDED.base_version > c.base_version THEN EXCLUDED.base_requests
                        ELSE c.base_requests END,
   base_tokens = CASE WHEN c.overwrite AND NOT c.moved THEN c.base_tokens
                      WHEN EXCLUDED.base_version > c.base_version THEN EXCLUDED.base_tokens
                      ELSE c.base_tokens END,
   base_version = CASE WHEN c.overwrite AND NOT c.moved THEN c.base_version
                       ELSE GREATEST(c.base_version, EXCLUDED.base_version) END,
   overwrite = c.overwrite AND NOT c.moved,
   moved = false, updated_at = now()
"""

_TAKE = f"""
UPDATE {TABLE} SET moved = true, updated_at = now()
 WHERE day = %s AND NOT moved
RETURNING org_id, provider, day::text, base_requests, base_tokens, base_version, requests, tokens, overwrite
"""

# After the carry-over a moved row holds what Redis then held, so a claim starts from there.
_MOVED_TO = f"""
UPDATE {TABLE} AS c
   SET base_requests = m.r, base_tokens = m.t, base_version = m.v, requests = 0, tokens = 0, overwrite = false
  FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::bigint[], %s::bigint[], %s::bigint[]) AS m(o, p, d, r, t, v)
 WHERE c.org_id = m.o AND c.provider = m.p AND c.day = m.d
"""

_RESET_SELECT = f"""
SELECT org_id, provider, base_requests + requests, base_tokens + tokens FROM {TABLE}
 WHERE org_id = ANY(%s) AND provider = ANY(%s) AND day = %s AND NOT moved FOR UPDATE
"""

# Redis unreachable: zero the rows and mark them to replace Redis' count when it returns.
_RESET_OVERWRITE = f"""
INSERT INTO {TABLE} AS c ({_COLUMNS})
SELECT o, p, %s::date, 0, 0, 0, 0, 0, false, true, now()
  FROM unnest(%s::bigint[]) AS o CROSS JOIN unnest(%s::text[]) AS p
ON CONFLICT (org_id, provider, day) DO UPDATE SET
   base_requests = 0, base_tokens = 0, base_version = 0, requests = 0, tokens = 0, moved = false, overwrite = true, updated_at = now()
"""


class PostgresStore:
    name = "postgres"

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def _cursor(self):
        return connections[self.alias].cursor()

    def reserve(self, org_id: int, bucket: str, day: str, *, tokens: int, requests_limit: int, tokens_limit: int, expire_at: int) -> Outcome:
        with tenant_context(org_id):
            if requests_limit < 1 or tokens > tokens_limit:
                # A first insert is not checked by the WHERE: refuse what could never fit.
                counts, _ = self._read(org_id, bucket, day)
                return Outcome(OVER_REQUESTS if requests_limit < 1 else OVER_TOKENS, counts.requests, counts.tokens)
            with self._cursor() as cursor:
                cursor.execute(_RESERVE, [org_id, bucket, day, tokens, requests_limit, tokens_limit])
                row = cursor.fetchone()
            if row is not None:
                return Outcome(OK, row[0], row[1])
            counts, moved = self._read(org_id, bucket, day)
        if moved:
            return Outcome(MOVED, counts.requests, counts.tokens)
        status = OVER_REQUESTS if counts.requests + 1 > requests_limit else OVER_TOKENS
        return Outcome(status, counts.requests, counts.tokens)

    def reconcile(self, org_id: int, bucket: str, day: str, *, token_delta: int, expire_at: int) -> Counts | str:
        return self._adjust(org_id, bucket, day, 0, token_delta)

    def release(self, org_id: int, bucket: str, day: str, *, tokens: int, expire_at: int) -> Counts | str:
        return self._adjust(org_id, bucket, day, -1, -tokens)

    def _adjust(self, org_id: int, bucket: str, day: str, requests: int, tokens: int) -> Counts | str:
        with tenant_context(org_id), self._cursor() as cursor:
            cursor.execute(_ADJUST, [org_id, bucket, day, requests, tokens])
            row = cursor.fetchone()
        return MOVED if row is None else Counts(row[0], row[1])

    def read(self, org_id: int, bucket: str, day: str) -> tuple[Counts, bool]:
        """The counts and whether the row has moved to Redis."""
        with tenant_context(org_id):
            return self._read(org_id, bucket, day)

    def _read(self, org_id: int, bucket: str, day: str) -> tuple[Counts, bool]:
        with self._cursor() as cursor:
            cursor.execute(_READ, [org_id, bucket, day])
            row = cursor.fetchone()
        if row is None:
            return Counts(0, 0), False
        return Counts(max(0, row[0]), max(0, row[1])), row[2]

    def claim(self, org_id: int, bucket: str, day: str, *, seen: tuple[int, int, int] | None) -> None:
        requests, tokens, version = seen or (0, 0, -1)
        with tenant_context(org_id), self._cursor() as cursor:
            cursor.execute(_CLAIM, [version, requests, version, tokens, version, org_id, bucket, day])

    def seed(self, entries: list[tuple[int, str, str, int, int, int]]) -> None:
        """Write this worker's view of Redis (org, bucket, day, r, t, v) as today's rows' base."""
        if not entries:
            return
        columns = [list(column) for column in zip(*entries, strict=True)]
        with operator_context(reason="quota store degraded: seeding fallback counters", actor="quota"):
            with self._cursor() as cursor:
                cursor.execute(_SEED, columns)

    def take_for_redis(self, day: str) -> list[CounterRow]:
        """Mark today's unmoved rows as moved and return them; drop older days' rows. Run it in
        a transaction that commits only once Redis has them (operator context)."""
        with self._cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE day < %s", [day])
            cursor.execute(_TAKE, [day])
            return [CounterRow(*row) for row in cursor.fetchall()]

    def mark_moved(self, rows: list[CounterRow], merged: list[tuple[int, int, int]]) -> None:
        """Record in the moved rows what Redis holds after the carry-over."""
        if not rows:
            return
        with self._cursor() as cursor:
            cursor.execute(_MOVED_TO, [
                [row.org_id for row in rows], [row.bucket for row in rows], [row.day for row in rows],
                [m[0] for m in merged], [m[1] for m in merged], [m[2] for m in merged],
            ])

    def reset(self, targets: dict[int, list[str]], day: str, *, overwrite: bool) -> list[tuple[int, str, Counts]]:
        """Zero the buckets of each org for `day` (caller sets the tenant or operator context).

        overwrite=False (Redis holds the counts): delete the rows. overwrite=True (Redis is
        unreachable): write zero rows that replace Redis' counts when it returns."""
        org_ids = list(targets)
        buckets = sorted({bucket for names in targets.values() for bucket in names})
        with transaction.atomic(using=self.alias), self._cursor() as cursor:
            cursor.execute(_RESET_SELECT, [org_ids, buckets, day])
            before = [(org_id, bucket, Counts(max(0, r), max(0, t))) for org_id, bucket, r, t in cursor.fetchall()]
            if overwrite:
                cursor.execute(_RESET_OVERWRITE, [day, org_ids, buckets])
            else:
                cursor.execute(f"DELETE FROM {TABLE} WHERE org_id = ANY(%s) AND provider = ANY(%s) AND day = %s", [org_ids, buckets, day])
        return before
