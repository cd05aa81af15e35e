"""Writing the audit log. Every event goes through `audit_record` / `audit_records`, or from
async code `audit_records_async` (group commit)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from django.db import DatabaseError, connections
from django.utils import timezone

from audit.chain import GENESIS_HASH, chained
from audit.models import ActorType, AuditLog
from dac.db.loop_connection import LoopConnection
from dac.per_loop import PerLoop
from tenants.context import Tenant, current_tenant, reset_tenant, set_tenant


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def user(cls, user) -> Actor:
        return cls(ActorType.USER, str(user.pk), user.email)

    @classmethod
    def token(cls, token) -> Actor:
        return cls(ActorType.TOKEN, str(token.pk), token.name)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, "", label)

    @classmethod
    def of_request(cls, request) -> Actor:
        token = getattr(request, "api_token", None)
        if token is not None:
            return cls.token(token)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls.user(user)
        return cls.system("anonymous")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    event: str
    target: str = ""
    details: dict = field(default_factory=dict)
    request_hash: str = ""
    response_hash: str = ""


def audit_record(
    *,
    org_id: int | None,
    actor: Actor,
    event: str,
    target: str = "",
    details: dict | None = None,
    request_hash: str = "",
    response_hash: str = "",
) -> AuditLog:
    """Append one event to the org's chain (org_id None: the system chain)."""
    event = AuditEvent(event, target, details or {}, request_hash, response_hash)
    return audit_records(org_id=org_id, actor=actor, events=[event])[0]


def audit_records(*, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> list[AuditLog]:
    """Append several events to one chain, durably: in the caller's transaction if there is one
    (an audited change and its record commit together), else committed on return.

    The chain's lock (taken by dac_audit_append) makes seq gapless and the chain linear with
    many writers; one call links and writes all the events (a provider call and its routing
    decision are written together).
    """
    return _append(org_id, [(actor, events)])[0]


# The head (seq, hash) each chain had after this process's last append to it: rows are linked
# to it and dac_audit_append (audit/migrations/0005) checks it under the chain's lock, so an
# append is one statement; a head moved by another process costs one more.
_heads: dict[int | None, tuple[int, str]] = {}
_APPEND_SQL = "SELECT appended, head_seq, head_hash, ids FROM dac_audit_append(%s, %s, %s::jsonb)"
# A failed attempt means another writer appended in between, so the chains always progress and
# a writer only retries while others win; many writers on one org can make one lose many times
# in a row (20 was seen to be too few with four threads). The bound only stops a bug looping.
_MAX_ATTEMPTS = 1000


def _append(org_id: int | None, appends: list[tuple[Actor, list[AuditEvent]]]) -> list[list[AuditLog]]:
    """Link the events of several appends, in order, to the head of one org's chain and write
    them in one statement (retried with the current head if another writer moved it), on the
    caller's connection (in its transaction, if any)."""
    # Writing another chain than the caller's (system events, sign-up) is allowed only here.
    token = set_tenant(Tenant(org_id=org_id, operator=org_id is None or current_tenant().operator))
    try:
        steps = _append_steps(org_id, appends)
        params, _ = next(steps)
        with connections["default"].cursor() as cursor:
            while True:
                cursor.execute(_APPEND_SQL, params)
                params, _ = steps.send(cursor.fetchone())
    except StopIteration as done:
        return [[_row(record) for record in records] for records in done.value]
    except BaseException:
        _heads.pop(org_id, None)  # e.g. rolled back with the caller's transaction: ask again
        raise
    finally:
        reset_tenant(token)


async def _append_on_loop(connection: LoopConnection, org_id: int | None, appends: list[tuple[Actor, list[AuditEvent]]]) -> list[list[dict]]:
    """`_append` outside any transaction, on the event loop's own connection (no thread hop).
    Returns the written rows as records (their fields, `id` included), not model instances.

    Each statement commits on its own, so when one fails without a reply (the connection died)
    its rows may be committed all the same: before the error is passed on (and the appends are
    retried), the chain is read, and rows found there with the very hashes sent count as written.
    """
    tenant = Tenant(org_id=org_id, operator=org_id is None)
    written: list[list[dict]] = []
    try:
        steps = _append_steps(org_id, appends)
        params, written = next(steps)
        while True:
            params, written = steps.send(await connection.fetchone(tenant, _APPEND_SQL, params))
    except StopIteration as done:
        return done.value
    except BaseException as exc:
        _heads.pop(org_id, None)  # the connection broke mid-append, say: ask again
        if isinstance(exc, DatabaseError) and await _committed_all_the_same(
            connection, tenant, org_id, [record for group in written for record in group]
        ):
            return written
        raise


_COMMITTED_SQL = (
    "SELECT array_agg(id ORDER BY seq), array_agg(hash ORDER BY seq) FROM audit_auditlog"
    " WHERE {chain} AND seq BETWEEN %s AND %s"
)


async def _committed_all_the_same(connection: LoopConnection, tenant: Tenant, org_id: int | None, records: list[dict]) -> bool:
    """Whether `records` (one statement's rows) are in the chain as sent; if so they get their ids
    and become the remembered head. A row's hash covers its content, time and predecessor, so
    equal hashes mean these very rows. False also when the chain cannot be read now."""
    if not records:
        return False
    chain = "org_id IS NULL" if org_id is None else "org_id = %s"
    params = ([] if org_id is None else [org_id]) + [records[0]["seq"], records[-1]["seq"]]
    try:
        ids, hashes = await connection.fetchone(tenant, _COMMITTED_SQL.format(chain=chain), params)
    except DatabaseError:
        return False
    if hashes != [record["hash"] for record in records]:
        return False
    for record, pk in zip(records, ids):
        record["id"] = pk
    _heads[org_id] = (records[-1]["seq"], records[-1]["hash"])
    return True


def _append_steps(org_id: int | None, appends):
    """The statements of one append, as a generator the caller drives: it yields the parameters
    of each dac_audit_append call with the rows that call would write (records per append), and
    is sent the row the call returned; it returns the written rows' records (fields by name,
    `id` included). The chain head this process remembers is tried first and kept up to date
    (the drivers forget it when a statement fails). Appends without events write nothing."""
    if not any(events for _, events in appends):
        return [[] for _ in appends]
    head = _heads.get(org_id)
    for _ in range(_MAX_ATTEMPTS):
        written, payload = _link(org_id, appends, head or (0, GENESIS_HASH))
        records = [record for group in written for record in group]
        appended, head_seq, head_hash, ids = yield [org_id, head[0] if head else None, payload], written
        if appended:
            break
        head = (head_seq, head_hash)
    else:
        raise RuntimeError(f"audit: the chain of org {org_id} kept moving; nothing was appended")
    for record, pk in zip(records, ids):
        record["id"] = pk
    if records:
        _heads[org_id] = (records[-1]["seq"], records[-1]["hash"])
    return written


def _link(org_id: int | None, appends, head: tuple[int, str]) -> tuple[list[list[dict]], str]:
    """The rows of each append as records (fields by name), hash-linked from `head`, and all of
    them as dac_audit_append's JSON (`chained`). Plain dicts, not model instances: this runs for
    every audited provider call."""
    written = [
        [
            {
                "org_id": org_id, "actor_type": actor.type, "actor_id": actor.id, "actor_label": actor.label,
                "event": item.event, "target": item.target, "details": item.details, "request_hash": item.request_hash,
                "response_hash": item.response_hash, "created_at": timezone.now(),
            }
            for item in events
        ]
        for actor, events in appends
    ]
    return written, chained([record for records in written for record in records], head)


def _row(record: dict) -> AuditLog:
    """A written record as the model instance the synchronous callers get."""
    row = AuditLog(**record)
    row._state.adding = False
    return row


async def audit_records_async(*, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> list[dict]:
    """`audit_records` for async code, with group commit: returns once the events are durable,
    with their records (fields by name, `id` included).

    Appends that arrive while a write is in progress wait and go, in order, in the next writes
    (`_write_size` of them each): one statement (one lock, one commit) per org for each. Under
    load that turns a per-org queue of commits into a few larger ones; alone, an append is
    written at once. Nothing is acknowledged before its commit.
    """
    return await audit_records_queued(org_id=org_id, actor=actor, events=events)


def audit_records_queued(*, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> asyncio.Future:
    """`audit_records_async` queued now, its result a future: when no write is in progress, the
    one that takes it is the next thing the event loop runs. For a caller with other work to
    start meanwhile that must not go before the write."""
    return _group_commits.get().append(org_id, actor, events)


AUDIT_WRITER_NAME = "dac audit writer"  # the group commit's connection in pg_stat_activity
# How many waiting appends one write takes. Every append of a write is acknowledged at its
# commit, and their callers then finish their answers one after another on the loop: a burst
# written whole (up to 45 appends were seen at 64 concurrent calls) makes its last answer wait for
# all the others. In groups of 8, PostgreSQL commits the next group while the loop finishes the
# previous one's answers: at 64 concurrent calls against a 100 ms upstream, 552-566 calls/s
# instead of 496-524 (p50 +5 to +8 ms instead of +17 to +28); groups of 4 lost 12 % at 256
# concurrent calls, where every statement's own CPU counts (docs/performance.md, round 8). A
# longer queue (a database slower to commit than the loop is to answer: a synchronous replica, a
# network disk) is worked off a quarter at a time, so writes grow with it as they did uncapped.
WRITE_BATCH_MAX = 8
WRITE_BACKLOG_SHARE = 4


def _write_size(waiting: int) -> int:
    return max(WRITE_BATCH_MAX, waiting // WRITE_BACKLOG_SHARE)


class _GroupCommit:
    """Per event loop: the appends waiting for the next write, and whether one is running."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.waiting: list[tuple[int | None, Actor, list[AuditEvent], asyncio.Future]] = []
        self.writing = False
        self.connection = LoopConnection(AUDIT_WRITER_NAME)  # one writer at a time: one connection, no pool

    def append(self, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> asyncio.Future:
        future = self.loop.create_future()
        self.waiting.append((org_id, actor, events, future))
        if not self.writing:
            self.writing = True
            task = self.loop.create_task(self._write_while_waiting())
            _WRITERS.add(task)
            task.add_done_callback(_WRITERS.discard)
        return future

    async def _write_while_waiting(self) -> None:
        try:
            while self.waiting:
                size = _write_size(len(self.waiting))
                batch, self.waiting = self.waiting[:size], self.waiting[size:]
                results = await _write_batch(self.connection, batch)
                for (*_, future), result in zip(batch, results):
                    if future.done():
                        continue  # its waiter was cancelled; the rows are written all the same
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.writing = False


async def _write_batch(connection: LoopConnection, batch) -> list:
    """One write of the appends taken from the queue: one statement (one transaction, one
    commit) per org. Returns, per append, its rows or the exception that kept it out: when an
    org's statement fails (it then wrote nothing), its appends are tried one by one, so a bad
    one fails alone."""
    by_org: dict[int | None, list[int]] = {}
    for index, (org_id, *_) in enumerate(batch):
        by_org.setdefault(org_id, []).append(index)
    results: list = [None] * len(batch)
    for org_id, indexes in by_org.items():
        try:
            for index, rows in zip(indexes, await _append_on_loop(connection, org_id, [(batch[i][1], batch[i][2]) for i in indexes])):
                results[index] = rows
        except Exception:
            for index in indexes:
                try:
                    results[index] = (await _append_on_loop(connection, org_id, [(batch[index][1], batch[index][2])]))[0]
                except Exception as exc:  # noqa: BLE001 - handed to its waiter
                    results[index] = exc
    return results


_WRITERS: set[asyncio.Task] = set()
# One writer per event loop; a closed loop's writer has its connection closed (dac/per_loop.py).
_group_commits: PerLoop[_GroupCommit] = PerLoop(_GroupCommit, discard=lambda writer: writer.connection.discard())


def audit_operator_bypass(*, actor: str, reason: str) -> None:
    audit_record(
        org_id=None,
        actor=Actor.system(actor),
        event="operator.bypass",
        details={"reason": reason},
    )
