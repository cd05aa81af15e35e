"""Writing the audit log. Every event goes through `audit_record` / `audit_records`, or from
async code `audit_records_async` (group commit)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from dataclasses import dataclass, field

from django.db import connections, transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, link_hash, row_content
from audit.models import ActorType, AuditLog
from dac.db.steps import db_step
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
    """Append several events to one chain in one short transaction, committed on return.

    The per-org advisory lock makes seq gapless and the chain linear with many writers; one
    lock and one read of the chain's head serve all the events (a provider call and its
    routing decision are written together).
    """
    with transaction.atomic():
        return _append(org_id, [(actor, events)])[0]


# Lock the chain and read its head (audit/migrations/0005), then insert every row from one JSON
# parameter: the statement's text is the same for any number of rows (a multi-row VALUES list
# would be a new text for each batch size, re-parsed each time).
_HEAD_SQL = "SELECT seq, hash FROM dac_audit_chain_head(%s)"
_COLUMNS = (
    "org_id bigint, seq bigint, actor_type text, actor_id text, actor_label text, event text, target text,"
    " details jsonb, request_hash text, response_hash text, created_at timestamptz, prev_hash text, hash text"
)
_INSERT_SQL = (
    "INSERT INTO audit_auditlog (org_id, seq, actor_type, actor_id, actor_label, event, target, details,"
    " request_hash, response_hash, created_at, prev_hash, hash)"
    f" SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r({_COLUMNS}) RETURNING id"
)


def _append(org_id: int | None, appends: list[tuple[Actor, list[AuditEvent]]]) -> list[list[AuditLog]]:
    """Link the events of several appends, in order, to the head of one org's chain and insert
    them: one lock, one head read, one INSERT (inside a transaction)."""
    # Writing another chain than the caller's (system events, sign-up) is allowed only here.
    token = set_tenant(Tenant(org_id=org_id, operator=org_id is None or current_tenant().operator))
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(_HEAD_SQL, [org_id])
            head = cursor.fetchone()
            seq, prev_hash = head if head else (0, GENESIS_HASH)
            written, records = [], []
            for actor, events in appends:
                rows = []
                for item in events:
                    seq += 1
                    row = AuditLog(
                        org_id=org_id, seq=seq, actor_type=actor.type, actor_id=actor.id, actor_label=actor.label,
                        event=item.event, target=item.target, details=item.details, request_hash=item.request_hash,
                        response_hash=item.response_hash, created_at=timezone.now(), prev_hash=prev_hash,
                    )
                    row.hash = prev_hash = link_hash(prev_hash, row_content(row))
                    rows.append(row)
                    records.append({
                        "org_id": org_id, "seq": seq, "actor_type": row.actor_type, "actor_id": row.actor_id,
                        "actor_label": row.actor_label, "event": row.event, "target": row.target, "details": row.details,
                        "request_hash": row.request_hash, "response_hash": row.response_hash,
                        "created_at": row.created_at.isoformat(), "prev_hash": row.prev_hash, "hash": row.hash,
                    })
                written.append(rows)
            if records:
                cursor.execute(_INSERT_SQL, [json.dumps(records, ensure_ascii=False)])
                every_row = [row for rows in written for row in rows]
                for row, (pk,) in zip(every_row, cursor.fetchall()):
                    row.pk = pk
                    row._state.adding = False
        return written
    finally:
        reset_tenant(token)


async def audit_records_async(*, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> list[AuditLog]:
    """`audit_records` for async code, with group commit: returns once the events are durable.

    Appends that arrive while a write is in progress wait and go together in the next one: one
    transaction, one lock and one head read per org, one commit for the lot. Under load that
    turns a per-org queue of transactions (each waiting for the previous commit) into a few
    larger ones; alone, an append is written at once. Nothing is acknowledged before its commit.
    """
    return await _group_commit().append(org_id, actor, events)


class _GroupCommit:
    """Per event loop: the appends waiting for the next write, and whether one is running."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[tuple[int | None, Actor, list[AuditEvent], asyncio.Future]] = []
        self.writing = False

    async def append(self, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> list[AuditLog]:
        future = self.loop.create_future()
        self.waiting.append((org_id, actor, events, future))
        if not self.writing:
            self.writing = True
            task = self.loop.create_task(self._write_while_waiting())
            _WRITERS.add(task)
            task.add_done_callback(_WRITERS.discard)
        return await future

    async def _write_while_waiting(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    results = await db_step(_write_batch, batch)
                except Exception:
                    # One bad append must not fail the others: write each on its own.
                    results = []
                    for org_id, actor, events, _ in batch:
                        try:
                            results.append(await db_step(audit_records, org_id=org_id, actor=actor, events=events))
                        except Exception as exc:  # noqa: BLE001 - handed to its waiter
                            results.append(exc)
                for (*_, future), result in zip(batch, results):
                    if future.done():
                        continue  # its waiter was cancelled; the rows are written all the same
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.writing = False


def _write_batch(batch) -> list[list[AuditLog]]:
    """All the waiting appends in one transaction: per org, one lock, one head read and one
    INSERT; the orgs' chains locked in id order, as every writer does (no deadlock)."""
    by_org: dict[int | None, list[int]] = {}
    for index, (org_id, *_) in enumerate(batch):
        by_org.setdefault(org_id, []).append(index)
    results: list = [None] * len(batch)
    with transaction.atomic():
        for org_id in sorted(by_org, key=lambda org: (org is not None, org or 0)):
            indexes = by_org[org_id]
            written = _append(org_id, [(batch[i][1], batch[i][2]) for i in indexes])
            for index, rows in zip(indexes, written):
                results[index] = rows
    return results


_WRITERS: set[asyncio.Task] = set()
_group_commits: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _group_commit() -> _GroupCommit:
    loop = asyncio.get_running_loop()
    writer = _group_commits.get(loop)
    if writer is None:
        writer = _group_commits[loop] = _GroupCommit(loop)
    return writer


def audit_operator_bypass(*, actor: str, reason: str) -> None:
    audit_record(
        org_id=None,
        actor=Actor.system(actor),
        event="operator.bypass",
        details={"reason": reason},
    )
