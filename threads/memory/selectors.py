"""Memory reads: recall for the send pipeline, search for members, status for the page.

A query goes to Qdrant with the org filter (and, for recall, without the current thread),
lexical alone or lexical + dense fused by reciprocal rank fusion; the hits are then re-read
from PostgreSQL under the org's tenant context, so only messages that still exist, are
complete and were not forgotten come back, with their text from the database.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q
from qdrant_client import models

from dac.errors import ApplicationError, ValidationFailed
from tenants.context import tenant_context
from threads.memory import config
from threads.memory.embeddings import Embedder, EmbeddingError, embedder_for
from threads.memory.store import DENSE, LEXICAL, StoreUnavailable, collection_name, conf, get_store, idf_scope, org_filter
from threads.memory.text import query_vector, snippet
from threads.models import ForgottenMemory, MemoryBacklog, Message, Status

logger = logging.getLogger("threads.memory")

MAX_QUERY_CHARS = 500
MAX_SEARCH_LIMIT = 50
RECALL_CHARS = 600

# Recall failures are logged once per kind until a recall succeeds again.
_warned: set[str] = set()

# Recall runs on these threads so the chat waits at most DAC_MEMORY_RECALL_BUDGET_MS: a slow
# store (local mode at a large size, a struggling server, a slow embeddings call) costs one
# budget, not the whole query. With every slot still busy the next recall is skipped rather
# than queued, so abandoned queries never pile up.
_RECALL_SLOTS = 2
_recall_pool = ThreadPoolExecutor(max_workers=_RECALL_SLOTS, thread_name_prefix="dac-memory-recall")
_recall_slots = threading.BoundedSemaphore(_RECALL_SLOTS)


class RecallSkipped(Exception):
    pass


def _within_budget(fn):
    budget = float(conf("DAC_MEMORY_RECALL_BUDGET_MS", 1000)) / 1000
    if budget <= 0:
        return fn()
    if not _recall_slots.acquire(blocking=False):
        raise RecallSkipped("earlier recalls are still running (the store is slow)")

    def run():
        try:
            return fn()
        finally:
            _recall_slots.release()

    try:
        return _recall_pool.submit(run).result(timeout=budget)
    except FutureTimeout:
        raise RecallSkipped(f"recall took longer than DAC_MEMORY_RECALL_BUDGET_MS ({budget * 1000:.0f} ms)") from None


class MemoryUnavailable(ApplicationError):
    status = 503
    code = "memory_unavailable"


@dataclass(frozen=True)
class Recalled:
    message_id: int
    thread_id: int
    score: float
    text: str

    def to_dict(self) -> dict:
        return {"message_id": self.message_id, "thread_id": self.thread_id, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Hit:
    message_id: int
    thread_id: int
    score: float


@dataclass(frozen=True)
class SearchResult:
    message_id: int
    thread_id: int
    thread_title: str
    role: str
    snippet: str
    score: float
    created_at: datetime


@dataclass(frozen=True)
class Search:
    query: str
    enabled: bool
    mode: str  # "lexical" or "hybrid"
    results: list[SearchResult]


def _query(org_id: int, text: str, *, limit: int, min_score: float | None, min_dense_score: float | None,
           embedder: Embedder | None, exclude_thread_id: int | None = None) -> tuple[str, list[Hit]]:
    """Ranked hits of the org's points; raises StoreUnavailable."""
    store = get_store()
    sparse = query_vector(text, org_id=org_id)
    dense = None
    if embedder is not None:
        try:
            dense = embedder.embed([text], query=True)[0]
        except EmbeddingError:
            dense = None  # logged by the embedder; lexical still answers
    scope = org_filter(org_id, exclude_thread_id=exclude_thread_id)
    if dense is None and not sparse:
        return "lexical", []
    lexical_query = models.SparseVector(indices=sparse.indices, values=sparse.values) if sparse else None

    # Term rarity measured among the org's own messages, not the whole collection's.
    lexical_params = models.SearchParams(idf=models.IdfCorpusParams(corpus=org_filter(org_id))) if idf_scope(store.kind) == "org" else None

    def run(client) -> list[models.ScoredPoint]:
        if dense is None or not store.dense_ok:
            if lexical_query is None:
                return []
            return client.query_points(
                collection_name(), query=lexical_query, using=LEXICAL, query_filter=scope, search_params=lexical_params,
                limit=limit, score_threshold=min_score, with_payload=True,
            ).points
        prefetch = [
            models.Prefetch(
                query=dense, using=DENSE, limit=limit * 4, score_threshold=min_dense_score,
                filter=org_filter(org_id, exclude_thread_id=exclude_thread_id, embedder=embedder.id),
            )
        ]
        if lexical_query is not None:
            prefetch.append(models.Prefetch(query=lexical_query, using=LEXICAL, filter=scope, params=lexical_params, limit=limit * 4, score_threshold=min_score))
        return client.query_points(
            collection_name(), prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF),
            query_filter=scope, limit=limit, with_payload=True,
        ).points

    points = store.call(run)
    mode = "hybrid" if dense is not None and store.dense_ok else "lexical"
    hits = []
    for point in points:
        payload = point.payload or {}
        if payload.get("org_id") != org_id:  # cannot happen with the filter; never trust it alone
            logger.error("memory: a query for org %s returned a point of org %s; dropped", org_id, payload.get("org_id"))
            continue
        hits.append(Hit(message_id=int(payload["message_id"]), thread_id=int(payload["thread_id"]), score=float(point.score)))
    return mode, hits


def _messages(hits: list[Hit]) -> dict[int, Message]:
    """The hits' messages as the database has them now (RLS applies: the caller's org only)."""
    ids = [h.message_id for h in hits]
    if not ids:
        return {}
    forgotten = ForgottenMemory.objects.filter(message_id__in=ids).values("message_id")
    rows = (
        Message.objects.filter(pk__in=ids, status=Status.COMPLETE).exclude(pk__in=forgotten)
        .select_related("thread").only("pk", "thread_id", "role", "content", "created_at", "thread__title")
    )
    return {m.pk: m for m in rows}


def recall_for(*, org_id: int, thread, text: str) -> list[Recalled]:
    """The org's best memories from its other threads for `text`; [] on any failure (logged once)."""
    try:
        recalled = _recall(org_id, thread, text)
    except Exception as exc:  # memory must never fail a chat
        kind = type(exc).__name__
        if kind not in _warned:
            _warned.add(kind)
            if isinstance(exc, (StoreUnavailable, RecallSkipped)):
                logger.warning("memory: recall skipped: %s", exc)
            else:
                logger.exception("memory: recall failed; chats go on without memory")
        return []
    _warned.clear()
    return recalled


def _recall(org_id: int, thread, text: str) -> list[Recalled]:
    if thread is None or not getattr(thread, "memory_enabled", True):
        return []
    with tenant_context(org_id):
        settings_ = config.effective(org_id)
        if not settings_.enabled or settings_.top_k <= 0:
            return []
        embedder = embedder_for(org_id=org_id, memory_settings=settings_.row)
        # Over-fetch: some hits may have been forgotten or deleted since they were indexed.
        _, hits = _within_budget(lambda: _query(
            org_id, text, limit=settings_.top_k * 2 + 2, min_score=settings_.min_score,
            min_dense_score=settings_.min_dense_score, embedder=embedder, exclude_thread_id=thread.pk,
        ))
        found = _messages(hits)
    recalled = []
    for hit in hits:
        message = found.get(hit.message_id)
        if message is None or message.thread_id == thread.pk:
            continue
        recalled.append(Recalled(message_id=message.pk, thread_id=message.thread_id, score=hit.score, text=_recall_text(message)))
        if len(recalled) == settings_.top_k:
            break
    return recalled


def _recall_text(message: Message) -> str:
    body = " ".join(message.content.split())
    if len(body) > RECALL_CHARS:
        body = body[: RECALL_CHARS - 1] + "…"
    who = "User" if message.role == "user" else "Assistant"
    title = message.thread.title or f"thread {message.thread_id}"
    return f"{who} in “{title}” ({message.created_at:%Y-%m-%d}): {body}"


def validate_query(query) -> str:
    query = query.strip() if isinstance(query, str) else ""
    if not query:
        raise ValidationFailed("Type something to search for.", detail={"q": "empty"})
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationFailed(f"The search is too long ({MAX_QUERY_CHARS} characters at most).", detail={"q": "too_long"})
    return query


def memory_search(*, org_id: int, query, limit: int = 20) -> Search:
    """Search the org's memory. ValidationFailed for a bad query, MemoryUnavailable if Qdrant is down."""
    query = validate_query(query)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_SEARCH_LIMIT}.", detail={"limit": "invalid"})
    with tenant_context(org_id):
        settings_ = config.effective(org_id)
        if not settings_.enabled:
            return Search(query=query, enabled=False, mode="lexical", results=[])
        embedder = embedder_for(org_id=org_id, memory_settings=settings_.row)
        try:
            mode, hits = _query(org_id, query, limit=limit + 5, min_score=None, min_dense_score=settings_.min_dense_score, embedder=embedder)
        except StoreUnavailable as exc:
            raise MemoryUnavailable("Memory search is unavailable right now; chats still work. Try again in a minute.", detail={"reason": "store_unavailable"}) from exc
        found = _messages(hits)
    results = []
    for hit in hits:
        message = found.get(hit.message_id)
        if message is None:
            continue
        results.append(SearchResult(
            message_id=message.pk, thread_id=message.thread_id, thread_title=message.thread.title or f"Thread {message.thread_id}",
            role=message.role, snippet=snippet(message.content, query), score=round(hit.score, 4), created_at=message.created_at,
        ))
        if len(results) == limit:
            break
    return Search(query=query, enabled=True, mode=mode, results=results)


@dataclass(frozen=True)
class MemoryStatus:
    enabled: bool
    store: str  # "server", "local", "memory" or "unavailable"
    pending: int
    failing: int
    settings: config.Effective


def memory_status(*, org_id: int) -> MemoryStatus:
    """What the memory page tells members: on or off, backlog size, the store's kind.

    Not the errors themselves: they name the operator's infrastructure (the admin shows them).
    """
    with tenant_context(org_id):
        settings_ = config.effective(org_id)
        counts = MemoryBacklog.objects.aggregate(pending=Count("id"), failing=Count("id", filter=Q(attempts__gt=0)))
    try:
        kind = get_store().kind
    except StoreUnavailable:
        kind = "unavailable"
    return MemoryStatus(enabled=settings_.enabled, store=kind, pending=counts["pending"], failing=counts["failing"], settings=settings_)


def reset_warnings() -> None:
    _warned.clear()


def wait_recalls(timeout: float = 10.0) -> bool:
    """Wait until no recall is running on the pool (tests)."""
    taken = 0
    try:
        for _ in range(_RECALL_SLOTS):
            if not _recall_slots.acquire(timeout=timeout):
                return False
            taken += 1
        return True
    finally:
        for _ in range(taken):
            _recall_slots.release()
