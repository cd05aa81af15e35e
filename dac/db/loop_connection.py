"""`LoopConnection`: one PostgreSQL connection owned by an event loop, for a writer that runs one
statement at a time on it (the audit group commit), so the statement needs no thread hop.

It is the runtime role's connection with Django's settings (same database, role, time zone),
in autocommit: each statement is its own transaction and is committed when its reply arrives.
Row-level security sees the tenant passed with each statement (`app.org_id`, set on the session
when it changes, like the Django backend in dac/db/base.py does).

No pool and no liveness round trip: before each statement the socket is polled without waiting.
An idle connection with something to read has been closed by the server (a PostgreSQL restart,
an idle timeout), so it is replaced before use instead of failing the statement. Errors come out
as Django's database errors, like those of the ORM.
"""

from __future__ import annotations

import select

import psycopg
from django.conf import settings
from django.db import connections
from django.db import utils as django_db_errors

from dac.db.base import _SET_TENANT_SQL
from tenants.context import Tenant


class LoopConnection:
    def __init__(self, application_name: str, alias: str = "default") -> None:
        self._application_name = application_name  # what pg_stat_activity shows for it
        self._alias = alias
        self._conn: psycopg.AsyncConnection | None = None
        self._tenant: Tenant | None = None

    async def fetchone(self, tenant: Tenant, sql: str, params: list) -> tuple:
        """Run one statement as `tenant` (committed on return) and give back its first row."""
        try:
            conn = await self._connection()
            if self._tenant != tenant:
                org = "" if tenant.org_id is None else str(tenant.org_id)
                await conn.execute(_SET_TENANT_SQL, (org, "on" if tenant.operator else "off"))
                self._tenant = tenant
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                await self.close()
            raise _django_error(exc) from exc

    async def close(self) -> None:
        conn, self._conn, self._tenant = self._conn, None, None
        if conn is not None:
            await conn.close()

    def discard(self) -> None:
        """Close without the event loop, for a connection whose loop has closed (libpq closes the
        socket; nothing to await)."""
        conn, self._conn, self._tenant = self._conn, None, None
        if conn is not None and not conn.closed:
            conn.pgconn.finish()

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is not None and (self._conn.closed or _told_goodbye(self._conn)):
            await self.close()
        if self._conn is None:
            params = connections[self._alias].get_connection_params()
            params.pop("cursor_factory", None)  # Django's, for sync connections
            params["application_name"] = self._application_name
            # Like the pool's wait for a connection: a PostgreSQL that does not answer fails the
            # statement after DB_POOL_TIMEOUT instead of holding the writer forever.
            params.setdefault("connect_timeout", max(1, round(settings.DB_POOL_TIMEOUT)))
            self._conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        return self._conn


def _told_goodbye(conn: psycopg.AsyncConnection) -> bool:
    """Whether the server has spoken to an idle connection (it only does so to end it)."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _django_error(exc: psycopg.Error) -> django_db_errors.DatabaseError:
    """psycopg's error as the django.db error of the same name (what the ORM would raise)."""
    for cls in type(exc).__mro__:
        django_cls = getattr(django_db_errors, cls.__name__, None)
        if isinstance(django_cls, type) and issubclass(django_cls, django_db_errors.DatabaseError):
            return django_cls(*exc.args)
    return django_db_errors.DatabaseError(*exc.args)
