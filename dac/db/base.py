"""PostgreSQL backend that keeps `app.org_id` in step with the current tenant.

Row-level security policies compare `org_id` with the session setting `app.org_id`. Each time
Django creates a cursor, this backend compares the tenant the connection last saw with the
ContextVar in `tenants.context` and re-asserts the setting when they differ. So the setting
follows the request onto whichever pooled or persistent connection and thread runs the query,
and a reused connection never carries the previous borrower's org into the next request.

Session-level `set_config(..., false)` is used on purpose: a transaction-local setting would
die with the middleware's transaction before a streamed body runs. A rollback undoes a
`set_config` made inside the rolled-back transaction, so every rollback forgets what the
connection is known to hold and the next cursor re-asserts it.

The pool checks each connection it lends (one empty round trip, `CONN_HEALTH_CHECKS`). When
that check fails, the server has usually closed every idle connection at once (a restart), and
psycopg_pool alone would let the borrower meet them one by one with a growing pause in between
(1 s, 2 s, ...): with eight dead connections idle, the first two requests after a restart ran
out of DB_POOL_TIMEOUT. So a failed check sweeps the whole idle pool (`ConnectionPool.check()`)
before the borrower's next try, which then gets a fresh connection.
"""

from __future__ import annotations

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from tenants.context import current_tenant

_SET_TENANT_SQL = "SELECT set_config('app.org_id', %s, false), set_config('app.operator', %s, false)"
_UNKNOWN = object()


def _check_sweeping_on_failure(pool: ConnectionPool):
    def check(connection) -> None:
        try:
            ConnectionPool.check_connection(connection)
        except Exception:
            pool.check()  # the others idle beside it most likely died with it: replace them now
            raise

    return check


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django hands psycopg_pool its plain check (`check=` is kept as `_check`); wrap it once.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = _check_sweeping_on_failure(pool)
        return pool

    def create_cursor(self, name=None):
        self._assert_tenant()
        return super().create_cursor(name)

    def _assert_tenant(self) -> None:
        raw = self.connection
        tenant = current_tenant()
        if getattr(raw, "_dac_tenant", _UNKNOWN) == tenant:
            return
        if raw.info.transaction_status == TransactionStatus.INERROR:
            return  # only a rollback can run now; the next cursor after it re-asserts
        org = "" if tenant.org_id is None else str(tenant.org_id)
        raw.execute(_SET_TENANT_SQL, (org, "on" if tenant.operator else "off"))
        raw._dac_tenant = tenant

    def _forget_tenant(self) -> None:
        if self.connection is not None:
            self.connection._dac_tenant = _UNKNOWN

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._forget_tenant()

    def _savepoint_rollback(self, sid):
        try:
            return super()._savepoint_rollback(sid)
        finally:
            self._forget_tenant()
