"""Memory writes: the indexing backlog, forgetting, rebuilding, and the org's settings.

The chat never waits for Qdrant. `index_messages` (called from the send pipeline once an
answer is saved) only records the message ids in MemoryBacklog and hands the org to the
indexer (`worker.py`: a background thread by default). Draining the backlog reconciles each
queued message with the database: a complete, non-empty, not-forgotten message of an org with
memory on is upserted; anything else (deleted, forgotten) has its point removed. A failure
leaves the rows with an exponential backoff; the org's next index call, and
`manage.py reindex_memory`, retry them.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import reduce

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from qdrant_client import models

from audit.services import Actor, audit_record
from dac.errors import NotFound, ValidationFailed
from dac.storable_text import unstorable_reason
from tenants.context import tenant_context
from threads.memory import config
from threads.memory.embeddings import DEFAULT_MODELS, Embedder, EmbeddingError, embedder_for
from threads.memory.store import DENSE, LEXICAL, StoreUnavailable, collection_name, conf, get_store, org_filter
from threads.memory.text import document_vector
from threads.models import ForgottenMemory, MemoryBacklog, MemorySettings, Message, Status

logger = logging.getLogger("threads.memory")

BATCH = 256
LEASE = timedelta(seconds=120)  # a claimed row is due again if its worker died mid-way
MAX_BACKOFF_SECONDS = 3600
UNSET = object()


def _backoff(attempts: int) -> timedelta:
    base = float(conf("DAC_MEMORY_BACKOFF_SECONDS", 5.0))
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


# --- the backlog ---


def _enqueue(*, org_id: int, kind: str, target_ids: list[int]) -> None:
    now = timezone.now()
    MemoryBacklog.objects.bulk_create(
        [MemoryBacklog(org_id=org_id, kind=kind, target_id=t, next_attempt_at=now, enqueued_at=now, created_at=now) for t in target_ids],
        update_conflicts=True,
        unique_fields=["org", "kind", "target_id"],
        update_fields=["next_attempt_at", "enqueued_at"],
    )


def index_messages(*, org_id: int, message_ids: list[int | None]) -> None:
    """Queue messages for indexing and wake the indexer. Cheap, and never raises.

    Called by the send pipeline inside the org's tenant context, after the answer is saved.
    """
    ids = sorted({int(i) for i in message_ids if i is not None})
    if not ids:
        return
    try:
        with tenant_context(org_id):
            if not config.effective(org_id).enabled:
                return
            _enqueue(org_id=org_id, kind=MemoryBacklog.Kind.MESSAGE, target_ids=ids)
        transaction.on_commit(lambda: kick(org_id))
    except Exception:  # memory must never fail a chat
        logger.exception("memory: could not queue messages %s of org %s for indexing", ids, org_id)


def kick(org_id: int, *, targets: list[tuple[str, int]] | None = None) -> None:
    """Drain the org's due backlog now (inline) or on the indexer thread (background)."""
    mode = conf("DAC_MEMORY_INDEX_MODE", "background")
    if mode == "inline" or targets is not None:
        try:
            process_backlog(org_id=org_id, targets=targets)
        except Exception:
            logger.exception("memory: draining the backlog of org %s failed", org_id)
    elif mode == "background":
        from threads.memory import worker

        worker.submit(org_id)
    # any other mode ("queue"): rows wait for `manage.py reindex_memory --pending`


@dataclass
class Drained:
    done: int = 0
    failed: int = 0
    error: str = ""
    more: bool = False


def _claim(org_id: int, limit: int, targets: list[tuple[str, int]] | None, due_only: bool = True) -> list[MemoryBacklog]:
    now = timezone.now()
    with transaction.atomic():
        rows = MemoryBacklog.objects.select_for_update(skip_locked=True).filter(org_id=org_id)
        if due_only:
            rows = rows.filter(next_attempt_at__lte=now)
        if targets is not None:
            rows = rows.filter(reduce(operator.or_, (Q(kind=k, target_id=t) for k, t in targets)))
        claimed = list(rows.order_by("id")[:limit])
        if claimed:
            MemoryBacklog.objects.filter(pk__in=[r.pk for r in claimed]).update(next_attempt_at=now + LEASE)
    return claimed


def _same_version(rows: list[MemoryBacklog]) -> Q:
    # A row re-queued while we worked (a forget racing an index) has a newer enqueued_at: keep it.
    return reduce(operator.or_, (Q(pk=r.pk, enqueued_at=r.enqueued_at) for r in rows))


def _release(rows: list[MemoryBacklog], error: str) -> None:
    now = timezone.now()
    for row in rows:
        MemoryBacklog.objects.filter(pk=row.pk, enqueued_at=row.enqueued_at).update(
            attempts=F("attempts") + 1, last_error=error[:500], next_attempt_at=now + _backoff(row.attempts + 1)
        )


def process_backlog(*, org_id: int, limit: int = BATCH, targets: list[tuple[str, int]] | None = None, due_only: bool = True) -> Drained:
    """Apply up to `limit` due backlog rows of the org to Qdrant (or back them off).

    `due_only=False` (the command's --pending) also takes rows still waiting out a backoff.
    """
    result = Drained()
    with tenant_context(org_id):
        if targets is not None and not targets:
            return result
        rows = _claim(org_id, limit, targets, due_only)
        if not rows:
            return result
        result.more = len(rows) == limit
        threads = [r for r in rows if r.kind == MemoryBacklog.Kind.THREAD]
        messages = [r for r in rows if r.kind == MemoryBacklog.Kind.MESSAGE]
        dense_failed: set[int] = set()
        try:
            store = get_store()
            for row in threads:
                store.call(lambda c, t=row.target_id: c.delete(collection_name(), points_selector=models.FilterSelector(filter=org_filter(org_id, thread_id=t)), wait=True))
            if messages:
                settings_ = config.effective(org_id)
                embedder = embedder_for(org_id=org_id, memory_settings=settings_.row) if settings_.enabled else None
                found = {m.pk: m for m in Message.objects.filter(pk__in=[r.target_id for r in messages])}
                dense_failed, error = _sync(org_id, [r.target_id for r in messages], found, enabled=settings_.enabled, embedder=embedder)
                if dense_failed:
                    result.error = error
        except StoreUnavailable as exc:
            _release(rows, str(exc))
            # Stop here: the rest waits for the next index call (or the command), not for a loop.
            result.failed, result.error, result.more = len(rows), str(exc), False
            return result
        except Exception as exc:  # a bug must leave the rows for a retry, not lose them
            logger.exception("memory: indexing for org %s failed", org_id)
            _release(rows, f"{type(exc).__name__}: {exc}")
            result.failed, result.error = len(rows), str(exc)
            return result
        failed_rows = [r for r in messages if r.target_id in dense_failed]
        done_rows = threads + [r for r in messages if r.target_id not in dense_failed]
        if done_rows:
            MemoryBacklog.objects.filter(_same_version(done_rows)).delete()
        if failed_rows:
            _release(failed_rows, f"indexed without dense vector: {result.error}")
        result.done, result.failed = len(done_rows), len(failed_rows)
    return result


def _indexable(message: Message | None) -> bool:
    return message is not None and message.status == Status.COMPLETE and bool(message.content.strip())


def _sync(org_id: int, ids: list[int], found: dict[int, Message], *, enabled: bool, embedder: Embedder | None) -> tuple[set[int], str]:
    """Make the points of `ids` match the database. Returns (ids indexed without their dense vector, why)."""
    forgotten = set(ForgottenMemory.objects.filter(message_id__in=ids).values_list("message_id", flat=True))
    upsert: list[Message] = []
    remove: list[int] = []
    for message_id in ids:
        message = found.get(message_id)
        if message_id in forgotten or not _indexable(message):
            remove.append(message_id)
        elif enabled:
            upsert.append(message)
        # memory off: the point (if any) stays, unused; switching memory back on re-queues the gap
    dense_failed, error = _upsert(org_id, upsert, embedder)
    if remove:
        _delete_points(org_id, remove)
    return dense_failed, error


def _upsert(org_id: int, messages: list[Message], embedder: Embedder | None) -> tuple[set[int], str]:
    store = get_store()
    dense_failed: set[int] = set()
    error = ""
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        dense: list[list[float]] | None = None
        if embedder is not None and store.dense_ok:
            try:
                dense = embedder.embed([m.content for m in chunk])
            except EmbeddingError as exc:
                dense_failed.update(m.pk for m in chunk)
                error = str(exc)
        points, empty = [], []
        for i, message in enumerate(chunk):
            vector: dict = {}
            sparse = document_vector(message.content, org_id=org_id)
            if sparse:
                vector[LEXICAL] = models.SparseVector(indices=sparse.indices, values=sparse.values)
            payload = {
                "org_id": org_id,
                "thread_id": message.thread_id,
                "message_id": message.pk,
                "role": message.role,
                "created_at": message.created_at.isoformat(),
            }
            if dense is not None:
                vector[DENSE] = dense[i]
                payload["embedder"] = embedder.id
            if vector:
                points.append(models.PointStruct(id=message.pk, vector=vector, payload=payload))
            else:
                empty.append(message.pk)  # only stopwords and no dense vector: nothing to match on
        if points:
            store.call(lambda c, p=points: c.upsert(collection_name(), points=p, wait=True))
        if empty:
            _delete_points(org_id, empty)
    return dense_failed, error


def _delete_points(org_id: int, message_ids: list[int]) -> None:
    # By filter, not by bare id: a delete can only ever touch this org's points.
    selector = org_filter(org_id)
    selector.must.append(models.HasIdCondition(has_id=list(message_ids)))
    get_store().call(lambda c: c.delete(collection_name(), points_selector=models.FilterSelector(filter=selector), wait=True))


# --- forgetting ---


def forget_message(*, org_id: int, message_id, actor: Actor, user=None) -> int:
    """Remove one message from the org's memory, for good (a rebuild skips it too).

    NotFound for a message the caller's org does not have. The point is deleted right away
    when Qdrant answers; otherwise the backlog keeps the deletion until it does.
    """
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise NotFound("No such message.") from None
    with tenant_context(org_id):
        message = Message.objects.filter(pk=message_id).only("pk", "thread_id").first()
        if message is None:
            raise NotFound("No such message.")
        with transaction.atomic():
            ForgottenMemory.objects.get_or_create(org_id=org_id, message=message, defaults={"forgotten_by": user})
            _enqueue(org_id=org_id, kind=MemoryBacklog.Kind.MESSAGE, target_ids=[message_id])
            audit_record(org_id=org_id, actor=actor, event="memory.forget", target=f"message:{message_id}", details={"thread_id": message.thread_id})
    kick(org_id, targets=[(MemoryBacklog.Kind.MESSAGE, message_id)])
    return message.thread_id


def forget_thread(*, org_id: int, thread_id: int) -> None:
    """Remove every memory of a thread (call it when the thread is deleted). Never raises.

    Inside a transaction, the deletion is queued with it and sent to Qdrant once it commits.
    """
    try:
        with tenant_context(org_id):
            _enqueue(org_id=org_id, kind=MemoryBacklog.Kind.THREAD, target_ids=[int(thread_id)])
        transaction.on_commit(lambda: kick(org_id, targets=[(MemoryBacklog.Kind.THREAD, int(thread_id))]))
    except Exception:  # deleting a thread must not fail on memory
        logger.exception("memory: could not queue forgetting thread %s of org %s", thread_id, org_id)


def forget_org(*, org_id: int) -> bool:
    """Delete every point of an org (when the org itself is deleted). False if Qdrant failed."""
    try:
        get_store().call(lambda c: c.delete(collection_name(), points_selector=models.FilterSelector(filter=org_filter(org_id)), wait=True))
    except StoreUnavailable:
        return False
    return True


# --- rebuilding ---


@dataclass
class Rebuilt:
    org_id: int
    indexed: int = 0
    removed: int = 0
    dense_failed: int = 0
    skipped: str = ""
    errors: list[str] = field(default_factory=list)


def reindex_org(*, org_id: int) -> Rebuilt:
    """Rebuild an org's points from the database; clears the backlog it covers.

    Upserts every complete, non-empty, not-forgotten message, then deletes the org's points
    that match none: the same end state as delete-then-index, without a window in which the
    org recalls nothing. Raises StoreUnavailable when Qdrant cannot be reached.
    """
    result = Rebuilt(org_id=org_id)
    with tenant_context(org_id):
        started = timezone.now()
        settings_ = config.effective(org_id)
        if not settings_.enabled:
            result.skipped = "memory is off for this org"
            return result
        embedder = embedder_for(org_id=org_id, memory_settings=settings_.row)
        forgotten = set(ForgottenMemory.objects.values_list("message_id", flat=True))
        kept: set[int] = set()
        last = 0
        while True:
            chunk = list(
                Message.objects.filter(pk__gt=last, status=Status.COMPLETE).exclude(content="").order_by("pk")
                .only("pk", "thread_id", "role", "content", "created_at", "status")[:BATCH]
            )
            if not chunk:
                break
            last = chunk[-1].pk
            usable = [m for m in chunk if m.pk not in forgotten and m.content.strip()]
            dense_failed, error = _upsert(org_id, usable, embedder)
            if dense_failed:
                result.dense_failed += len(dense_failed)
                if error not in result.errors:
                    result.errors.append(error)
                _enqueue(org_id=org_id, kind=MemoryBacklog.Kind.MESSAGE, target_ids=sorted(dense_failed))
            kept.update(m.pk for m in usable)
            result.indexed += len(usable)
        result.removed = _prune(org_id, kept)
        MemoryBacklog.objects.filter(enqueued_at__lte=started).delete()
    return result


def _prune(org_id: int, kept: set[int]) -> int:
    store = get_store()
    stale: list[int] = []
    offset = None
    while True:
        points, offset = store.call(lambda c, o=offset: c.scroll(collection_name(), scroll_filter=org_filter(org_id), limit=1000, offset=o, with_payload=False, with_vectors=False))
        stale.extend(int(p.id) for p in points if int(p.id) not in kept)
        if offset is None:
            break
    for start in range(0, len(stale), 1000):
        _delete_points(org_id, stale[start : start + 1000])
    return len(stale)


def prune_orphans(*, live_org_ids: list[int]) -> None:
    """Delete points of orgs that no longer exist (their rows are gone, their points not)."""
    orphan = models.Filter(must_not=[models.FieldCondition(key="org_id", match=models.MatchAny(any=list(live_org_ids)))])
    get_store().call(lambda c: c.delete(collection_name(), points_selector=models.FilterSelector(filter=orphan), wait=True))


# --- settings ---


def memory_settings_update(
    *, org_id: int, actor: Actor, enabled=UNSET, top_k=UNSET, min_score=UNSET, embeddings=UNSET, embedding_model=UNSET
) -> MemorySettings:
    """Change an org's memory settings (admins). None for top_k/min_score means the default."""
    changes: dict = {}
    if enabled is not UNSET:
        changes["enabled"] = bool(enabled)
    if top_k is not UNSET:
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= config.MAX_TOP_K):
            raise ValidationFailed(f"Memories per message must be a whole number from 0 to {config.MAX_TOP_K}.", detail={"top_k": "invalid"})
        changes["top_k"] = top_k
    if min_score is not UNSET:
        if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1000):
            raise ValidationFailed("The minimum score must be a number from 0 to 1000.", detail={"min_score": "invalid"})
        changes["min_score"] = None if min_score is None else float(min_score)
    if embeddings is not UNSET:
        embeddings = embeddings or ""
        if embeddings not in MemorySettings.Embeddings.values:
            raise ValidationFailed(f"Embeddings must be one of: off, {', '.join(DEFAULT_MODELS)}.", detail={"embeddings": "invalid"})
        changes["embeddings"] = embeddings
    if embedding_model is not UNSET:
        embedding_model = (embedding_model or "").strip()
        if len(embedding_model) > 200:
            raise ValidationFailed("The embedding model name is too long (200 characters at most).", detail={"embedding_model": "too_long"})
        if reason := unstorable_reason("The embedding model name", embedding_model):
            raise ValidationFailed(reason, detail={"embedding_model": "unstorable"})
        changes["embedding_model"] = embedding_model
    requeue = None
    with tenant_context(org_id), transaction.atomic():
        row, _ = MemorySettings.objects.select_for_update().get_or_create(org_id=org_id)
        if "enabled" in changes and changes["enabled"] != row.enabled:
            if changes["enabled"]:
                # What was said while memory was off was never indexed: queue it.
                requeue = Message.objects.filter(created_at__gte=row.disabled_at) if row.disabled_at else Message.objects.all()
                row.disabled_at = None
            else:
                row.disabled_at = timezone.now()
        if changes.get("embeddings") and row.embeddings != changes["embeddings"] and "embedding_model" not in changes:
            changes["embedding_model"] = ""
        new_embedder = (changes.get("embeddings", row.embeddings), changes.get("embedding_model", row.embedding_model))
        if new_embedder[0] and new_embedder != (row.embeddings, row.embedding_model):
            # A new embedding space: every message is re-embedded, in the background.
            requeue = Message.objects.all()
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = timezone.now()
        row.save()
        if requeue is not None:
            ids = list(requeue.filter(status=Status.COMPLETE).order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(ids), 1000):
                _enqueue(org_id=org_id, kind=MemoryBacklog.Kind.MESSAGE, target_ids=ids[start : start + 1000])
        audit_record(org_id=org_id, actor=actor, event="memory.settings", target=f"org:{org_id}", details=dict(changes))
    if requeue is not None and row.enabled:
        transaction.on_commit(lambda: kick(org_id))
    return row
