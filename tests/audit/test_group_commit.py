"""`audit_records_async`: concurrent appends share transactions (group commit), every append is
durable when it returns, chains stay gapless and verifiable, one bad append fails alone, and a
write whose reply was lost is not written twice."""

import asyncio
import json
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection

from audit.models import AuditLog
from audit.services import WRITE_BATCH_MAX, Actor, AuditEvent, audit_records_async
from dac.db.loop_connection import LoopConnection
from tenants.context import Tenant, tenant_context

pytestmark = pytest.mark.django_db(transaction=True)


def _append_statements_during(coro_factory) -> tuple[object, list[int]]:
    """Run the coroutine; return its result and, for each append statement sent meanwhile (on
    the event loop's own connection, where the group commit writes), how many rows it carried."""
    rows = []
    original = LoopConnection.fetchone

    async def counting(self, tenant, sql, params):
        if "dac_audit_append" in sql:
            rows.append(len(json.loads(params[2])))
        return await original(self, tenant, sql, params)

    LoopConnection.fetchone = counting
    try:
        result = asyncio.run(coro_factory())
    finally:
        LoopConnection.fetchone = original
    return result, rows


def _events(n: int) -> list[AuditEvent]:
    return [AuditEvent("test.group", f"item:{i}", {"i": i}) for i in range(n)]


def test_concurrent_appends_share_writes_and_the_chains_verify(org_a, org_b):
    async def burst():
        appends = [
            audit_records_async(org_id=org.id, actor=Actor.system("bench"), events=_events(2))
            for _ in range(40) for org in (org_a, org_b)
        ]
        return await asyncio.gather(*appends)

    results, statements = _append_statements_during(burst)
    assert len(results) == 80 and all(len(rows) == 2 and rows[0]["id"] for rows in results)
    # 80 appends, but far fewer statements (each a lock and a commit): they were written in groups.
    assert 2 <= len(statements) < 80
    for org in (org_a, org_b):
        with tenant_context(org):
            seqs = list(AuditLog.objects.filter(org_id=org.id, event="test.group").order_by("seq").values_list("seq", flat=True))
        assert len(seqs) == 80
        assert seqs == list(range(seqs[0], seqs[0] + 80))  # gapless
    out = StringIO()
    call_command("verify_audit", stdout=out)  # raises CommandError on a broken chain
    assert "verified" in out.getvalue()


def _burst_of(org, appends: int):
    """`appends` appends of two events each, all waiting before the writer's first turn; their
    rows and the number of appends each statement carried."""
    async def burst():
        queued = (audit_records_async(org_id=org.id, actor=Actor.system("bench"), events=_events(2)) for _ in range(appends))
        return await asyncio.wait_for(asyncio.gather(*queued), 30)

    results, statements = _append_statements_during(burst)
    seqs = [rows[0]["seq"] for rows in results]
    assert seqs == list(range(seqs[0], seqs[0] + 2 * appends, 2))  # in the order queued, gapless
    return [rows // 2 for rows in statements]


def test_a_burst_is_written_in_order_in_groups_of_write_batch_max(org_a):
    # 32 waiting at once: written whole they would be one statement of 32.
    assert _burst_of(org_a, 4 * WRITE_BATCH_MAX) == [WRITE_BATCH_MAX] * 4


def test_a_long_queue_is_written_a_quarter_at_a_time(org_a):
    # A database slower than the loop leaves more waiting: writes grow with the queue.
    assert _burst_of(org_a, 100) == [25, 18, 14, 10, 8, 8, 8, 8, 1]


def test_a_connection_the_server_closed_is_replaced_before_the_next_statement(org_a):
    """A PostgreSQL restart (or an idle timeout) ends the loop's connection while it is idle: the
    next statement goes out on a new one instead of failing on the dead one."""
    import psycopg

    from tests.conftest import SUPERUSER_URL

    async def statements():
        conn = LoopConnection("dac test writer")
        try:
            before = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid()", [])
            with psycopg.connect(SUPERUSER_URL, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [before[0]])
            await asyncio.sleep(0.2)  # the goodbye reaches the socket
            after = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid(), current_setting('app.org_id')", [])
        finally:
            await conn.close()
        return before, after

    before, after = asyncio.run(statements())
    assert after[0] != before[0] and after[1] == str(org_a.id)  # a new session, the tenant set again


def test_a_database_error_on_the_loop_connection_is_djangos(org_a):
    from django.db import DatabaseError, IntegrityError

    async def bad_statement():
        conn = LoopConnection("test")
        try:
            await conn.fetchone(Tenant(org_id=org_a.id), "SELECT 1 / 0", [])
        finally:
            await conn.close()

    with pytest.raises(DatabaseError, match="division by zero") as caught:
        asyncio.run(bad_statement())
    assert not isinstance(caught.value, IntegrityError) and type(caught.value).__module__ == "django.db.utils"


def test_the_loop_connection_sends_what_does_not_fit_a_socket_buffer_and_decodes_rows(org_a):
    """A statement larger than the socket's buffer is flushed as the socket drains; the row comes
    back decoded (bool, bigint, text and NULL, arrays)."""
    big = "é" * 3_000_000  # ~6 MB of UTF-8

    async def statements():
        conn = LoopConnection("test")
        try:
            async with asyncio.timeout(10):  # unflushed, the statement would wait forever
                sized = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT length(%s), octet_length(%s)", [big, big])
            typed = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT %s::bigint > 1, %s::bigint, %s::text, ARRAY[1, 2]::bigint[]", [2, 3, None])
            nothing = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT 1 WHERE false", [])
        finally:
            await conn.close()
        return sized, typed, nothing

    sized, typed, nothing = asyncio.run(statements())
    assert sized == (3_000_000, 6_000_000)
    assert typed == (True, 3, None, [1, 2]) and nothing is None


def test_a_statement_cancelled_mid_exchange_leaves_no_half_read_connection(org_a):
    """Cancelled while PostgreSQL works (a deadline, a loop shutting down): the connection is
    closed, not reused with a reply still on its way, and the next statement gets a new one."""

    async def statements():
        conn = LoopConnection("test")
        try:
            first = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid()", [])
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_sleep(2)", [])
            after = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid(), 7", [])
        finally:
            await conn.close()
        return first, after

    first, after = asyncio.run(statements())
    assert after[0] != first[0] and after[1] == 7


def test_a_failed_statement_keeps_the_connection_and_a_killed_one_says_why(org_a):
    """A statement's own error leaves the session usable (same backend); a backend terminated
    while it works gives PostgreSQL's reason, and the next statement gets a new session."""
    import psycopg
    from django.db import DataError

    from tests.conftest import SUPERUSER_URL

    async def statements():
        conn = LoopConnection("test")
        try:
            first = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid()", [])
            with pytest.raises(DataError, match="division by zero"):
                await conn.fetchone(Tenant(org_id=org_a.id), "SELECT 1 / 0", [])
            with pytest.raises(DataError, match="NUL"):
                await conn.fetchone(Tenant(org_id=org_a.id), "SELECT %s", ["a\x00b"])
            same = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid()", [])

            def terminate():
                time.sleep(0.3)
                with psycopg.connect(SUPERUSER_URL, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", [same[0]])

            killer = threading.Thread(target=terminate)
            killer.start()
            try:
                with pytest.raises(OperationalError, match="administrator command"):
                    await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_sleep(5)", [])
            finally:
                killer.join()
            after = await conn.fetchone(Tenant(org_id=org_a.id), "SELECT pg_backend_pid()", [])
        finally:
            await conn.close()
        return first, same, after

    first, same, after = asyncio.run(statements())
    assert same == first and after != first


def test_the_loop_connection_refuses_parameters_it_would_send_wrongly(org_a):
    async def statement(sql, params):
        conn = LoopConnection("test")
        try:
            return await conn.fetchone(Tenant(org_id=org_a.id), sql, params)
        finally:
            await conn.close()

    with pytest.raises(TypeError, match="not float"):
        asyncio.run(statement("SELECT %s", [1.5]))
    with pytest.raises(ValueError, match="only %s placeholders"):
        asyncio.run(statement("SELECT 100 %% 7, %s", [1]))


def test_an_append_that_cannot_be_written_fails_alone(org_a):
    async def burst():
        good = [audit_records_async(org_id=org_a.id, actor=Actor.system(), events=_events(1)) for _ in range(5)]
        bad = audit_records_async(org_id=org_a.id, actor=Actor.system(), events=[AuditEvent("x" * 200, "", {})])
        return await asyncio.gather(*good, bad, return_exceptions=True)

    results = asyncio.run(burst())
    assert all(isinstance(rows, list) for rows in results[:5])
    assert isinstance(results[5], Exception)  # event name longer than the column
    with tenant_context(org_a):
        assert AuditLog.objects.filter(org_id=org_a.id, event="test.group").count() == 5
    connection.close()


def test_a_write_committed_but_never_answered_is_found_not_written_again(org_a, monkeypatch):
    """The connection dies after PostgreSQL committed a batch and before its reply reached us:
    the rows are found in the chain with the hashes sent, the appends succeed, nothing is
    duplicated (before: each append of the batch was retried and written a second time)."""
    lost = []
    original = LoopConnection.fetchone

    async def reply_lost_once(self, tenant, sql, params):
        row = await original(self, tenant, sql, params)
        if "dac_audit_append" in sql and not lost:
            lost.append(row)
            raise OperationalError("server closed the connection unexpectedly")
        return row

    monkeypatch.setattr(LoopConnection, "fetchone", reply_lost_once)

    async def burst():
        return await asyncio.gather(*[
            audit_records_async(org_id=org_a.id, actor=Actor.system(), events=_events(2)) for _ in range(3)
        ])

    results = asyncio.run(burst())
    assert lost and all(len(rows) == 2 and rows[0]["id"] for rows in results)
    with tenant_context(org_a):
        seqs = list(AuditLog.objects.filter(org_id=org_a.id, event="test.group").order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + 6))  # six events, once each, gapless
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "verified" in out.getvalue()
    connection.close()


def test_a_head_moved_by_another_process_is_relinked_not_forked(org_a):
    """Another worker appends between two of ours: this process's remembered head is stale, the
    append is linked again to the real head, and the chain still verifies."""
    from audit import services

    with tenant_context(org_a):
        services.audit_record(org_id=org_a.id, actor=Actor.system(), event="test.group")
        remembered = services._heads[org_a.id]
        services.audit_record(org_id=org_a.id, actor=Actor.system(), event="test.group")
        services._heads[org_a.id] = remembered  # as if the second append came from another worker
        row = services.audit_record(org_id=org_a.id, actor=Actor.system(), event="test.group")
        seqs = list(AuditLog.objects.filter(org_id=org_a.id).order_by("seq").values_list("seq", flat=True))
    assert row.seq == seqs[-1] and seqs == list(range(1, len(seqs) + 1))
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "verified" in out.getvalue()


def test_an_append_of_no_events_writes_nothing(org_a):
    from audit.services import audit_records

    with tenant_context(org_a):
        before = AuditLog.objects.filter(org_id=org_a.id).count()
        assert audit_records(org_id=org_a.id, actor=Actor.system(), events=[]) == []
        assert AuditLog.objects.filter(org_id=org_a.id).count() == before


def test_the_writer_connection_of_a_closed_loop_is_closed_when_the_next_loop_writes(org_a):
    from audit import services

    async def append():
        await audit_records_async(org_id=org_a.id, actor=Actor.system(), events=_events(1))
        return services._group_commits.get().connection._conn

    loops = [asyncio.new_event_loop() for _ in range(2)]  # held, so neither is collected meanwhile
    try:
        first = loops[0].run_until_complete(append())
        loops[0].close()  # a short-lived loop ends, its writer's connection still open
        assert not first.closed
        second = loops[1].run_until_complete(append())
        assert first.closed and not second.closed
    finally:
        for loop in loops:
            loop.close()
