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

A statement is exchanged over libpq's asynchronous calls directly (psycopg.pq: send, flush, read
as the socket turns readable), its row decoded by psycopg's own loaders: psycopg's cursor
machinery around the same exchange cost ~0.04 ms of CPU a statement warm and ~0.2 ms of wall
time after an idle spell (bench/in_process.py --phases), and the audit commit waits on it.
Parameters go as text (int, str or None: what the audit writer sends), their types inferred by
the server. A connection left in the middle of an exchange (cancelled, broken) is closed; a
statement it had already sent may still commit (the audit writer reads the chain back before it
counts such an append as not written).
"""

from __future__ import annotations

import asyncio
import functools
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
        self._loaders: psycopg.adapt.Transformer | None = None  # the connection's, for rows

    async def fetchone(self, tenant: Tenant, sql: str, params: list) -> tuple | None:
        """Run one statement as `tenant` (committed on return) and give back its first row."""
        try:
            conn = await self._connection()
            if self._tenant != tenant:
                org = "" if tenant.org_id is None else str(tenant.org_id)
                await self._exchange(conn, _SET_TENANT_SQL, (org, "on" if tenant.operator else "off"))
                self._tenant = tenant
            return await self._exchange(conn, sql, params)
        except psycopg.Error as exc:
            raise _django_error(exc) from exc

    async def _exchange(self, conn: psycopg.AsyncConnection, sql: str, params) -> tuple | None:
        """Send one statement, read its results; the first row of the last one, decoded."""
        pgconn, loop = conn.pgconn, asyncio.get_running_loop()
        query, values = _numbered(sql), [_text(value) for value in params]  # refused before anything is sent
        results = []
        done = False
        try:
            pgconn.send_query_params(query, values)
            while pgconn.flush():  # the rest did not fit in the socket's buffer
                await _ready(pgconn.socket, loop.add_writer, loop.remove_writer)
            while True:
                while pgconn.is_busy():
                    await _ready(pgconn.socket, loop.add_reader, loop.remove_reader)
                    pgconn.consume_input()
                result = pgconn.get_result()
                if result is None:
                    break
                results.append(result)
            done = True
        except psycopg.OperationalError:
            # The server ended the connection mid-statement: its own reason, if it sent one
            # ("terminating connection due to administrator command"), says more than ours.
            _raise_error_in(results, conn)
            raise
        finally:
            if not done:  # cancelled or broken mid-exchange: unusable for the next statement
                self.discard()
        _raise_error_in(results, conn)
        if not results or any(result.status not in _ROWS_OR_DONE for result in results):
            self.discard()
            statuses = [psycopg.pq.ExecStatus(result.status).name for result in results]
            raise psycopg.OperationalError(f"unexpected results from PostgreSQL: {statuses or 'none'}")
        last = results[-1]
        if not last.ntuples:
            return None
        self._loaders.set_pgresult(last)
        return self._loaders.load_row(0, tuple)

    async def close(self) -> None:
        conn, self._conn, self._tenant, self._loaders = self._conn, None, None, None
        if conn is not None:
            await conn.close()

    def discard(self) -> None:
        """Close without the event loop (libpq closes the socket; nothing to await): for a
        connection whose loop has closed, or one left mid-exchange."""
        conn, self._conn, self._tenant, self._loaders = self._conn, None, None, None
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
            self._loaders = psycopg.adapt.Transformer(self._conn)
        return self._conn


_ROWS_OR_DONE = frozenset({psycopg.pq.ExecStatus.TUPLES_OK, psycopg.pq.ExecStatus.COMMAND_OK})


def _raise_error_in(results: list, conn: psycopg.AsyncConnection) -> None:
    """Raise the statement's error, if PostgreSQL reported one, as psycopg's exception for it."""
    for result in results:
        if result.status == psycopg.pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


async def _ready(fd: int, watch, unwatch) -> None:
    """Wait until the socket is readable (watch=add_reader) or writable (add_writer)."""
    waiter = asyncio.get_running_loop().create_future()
    watch(fd, lambda: waiter.done() or waiter.set_result(None))
    try:
        await waiter
    finally:
        unwatch(fd)


@functools.lru_cache(maxsize=64)
def _numbered(sql: str) -> bytes:
    """psycopg's `%s` placeholders as PostgreSQL's `$1`, `$2`... (every `%s`, quoted or not: the
    statements sent here have no literal one)."""
    parts = sql.split("%s")
    if any("%" in part for part in parts):
        raise ValueError(f"only %s placeholders are supported here: {sql!r}")
    return "".join(f"{part}${index}" for index, part in enumerate(parts[:-1], start=1)).encode() + parts[-1].encode()


def _text(value) -> bytes | None:
    """A parameter in PostgreSQL's text format (the server infers its type)."""
    if value is None:
        return None
    if isinstance(value, str) and "\x00" in value:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"LoopConnection sends int, str or None parameters, not {type(value).__name__}")


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
