"""The Qdrant side of memory: one collection, every read and delete scoped to one org.

Where the points live:
- `QDRANT_URL` set: a Qdrant server (any number of DAC processes).
- else `QDRANT_PATH` set: qdrant-client local mode on disk. One process owns the folder; a
  second one fails to open it, logs why, and runs with memory off (chats are unaffected).
- both empty (the test settings): an in-memory local store, private to the process.

Points are keyed by message id and carry only ids and metadata
`{org_id, thread_id, message_id, role, created_at[, embedder]}`: message text stays in
PostgreSQL under row-level security, and every hit is re-read from there, so a point that
outlived its message (or a bug in a filter) can never surface text.

Every call goes through `Store.call`, which serialises access in local mode (its in-process
index is not thread-safe) and opens a circuit after a failure, so a Qdrant outage costs one
timeout and one log line, not one per chat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from qdrant_client import QdrantClient, models

logger = logging.getLogger("threads.memory")

LEXICAL = "lexical"
DENSE = "dense"

T = TypeVar("T")


class StoreUnavailable(Exception):
    """Qdrant cannot be reached or refused the call; the message says why."""


def conf(name: str, default):
    """A DAC_MEMORY_* setting, with the documented default when settings.py does not set it."""
    return getattr(settings, name, default)


def collection_name() -> str:
    return conf("DAC_MEMORY_COLLECTION", "dac_memory")


def dense_size() -> int:
    return int(conf("DAC_MEMORY_DENSE_DIM", 768))


def idf_scope(store_kind: str) -> str:
    """"org": IDF statistics over the org's own points (Qdrant >= 1.19 server); "global": the collection's.

    "auto" picks "org" on a server and "global" in local mode, whose corpus-scoped IDF is a
    Python scan over every point of the org on each query (bench/memory_bench.py measures it).
    """
    scope = conf("DAC_MEMORY_IDF_SCOPE", "auto")
    if scope == "auto":
        return "org" if store_kind == "server" else "global"
    return scope


def org_filter(org_id: int, *, thread_id: int | None = None, exclude_thread_id: int | None = None,
               embedder: str | None = None) -> models.Filter:
    """The filter every search, scroll and delete starts from: one org, never none."""
    if not isinstance(org_id, int) or isinstance(org_id, bool) or org_id <= 0:
        raise ValueError(f"memory: refusing an org filter for org_id={org_id!r}")
    must: list = [models.FieldCondition(key="org_id", match=models.MatchValue(value=org_id))]
    if thread_id is not None:
        must.append(models.FieldCondition(key="thread_id", match=models.MatchValue(value=int(thread_id))))
    if embedder is not None:
        must.append(models.FieldCondition(key="embedder", match=models.MatchValue(value=embedder)))
    must_not = []
    if exclude_thread_id is not None:
        must_not.append(models.FieldCondition(key="thread_id", match=models.MatchValue(value=int(exclude_thread_id))))
    return models.Filter(must=must, must_not=must_not or None)


@dataclass
class Store:
    client: QdrantClient
    kind: str  # "server", "local" or "memory"
    where: str
    lock: threading.RLock | None
    ready: bool = False
    dense_ok: bool = True
    failed_at: float = 0.0
    failures: int = 0

    def call(self, fn: Callable[[QdrantClient], T]) -> T:
        """Run one client operation; StoreUnavailable on any failure (and while the circuit is open)."""
        retry_after = float(conf("DAC_MEMORY_RETRY_SECONDS", 30.0))
        if self.failed_at and time.monotonic() - self.failed_at < retry_after:
            raise StoreUnavailable(f"Qdrant ({self.where}) failed {time.monotonic() - self.failed_at:.0f}s ago; retrying after {retry_after:.0f}s")
        try:
            if self.lock is None:
                result = self._run(fn)
            else:
                with self.lock:
                    result = self._run(fn)
        except StoreUnavailable:
            raise
        except Exception as exc:  # qdrant-client raises httpx, grpc, ValueError, UnexpectedResponse …
            self.failures += 1
            self.ready = False  # check the collection again once Qdrant answers (it may be new)
            if not self.failed_at:
                logger.warning("memory: Qdrant at %s is failing (%s: %s); chats go on without memory and indexing is queued", self.where, type(exc).__name__, str(exc)[:300])
            self.failed_at = time.monotonic()
            raise StoreUnavailable(f"Qdrant ({self.where}): {type(exc).__name__}: {str(exc)[:300]}") from exc
        if self.failed_at:
            logger.info("memory: Qdrant at %s is back after %d failed calls", self.where, self.failures)
            self.failed_at, self.failures = 0.0, 0
        return result

    def _run(self, fn: Callable[[QdrantClient], T]) -> T:
        if not self.ready:
            self._ensure_collection()
            self.ready = True
        return fn(self.client)

    def _ensure_collection(self) -> None:
        """Create the collection on first use: sparse "lexical" (IDF) and an optional dense vector."""
        name = collection_name()
        if not self.client.collection_exists(name):
            try:
                self.client.create_collection(
                    name,
                    vectors_config={DENSE: models.VectorParams(size=dense_size(), distance=models.Distance.COSINE)},
                    sparse_vectors_config={LEXICAL: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            except Exception:
                if not self.client.collection_exists(name):  # another process may have won the race
                    raise
            if self.kind == "server":
                # Local mode ignores payload indexes (and warns); a server uses them to serve the
                # org filter from the index instead of a scan.
                self.client.create_payload_index(name, "org_id", models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, lookup=True, range=False))
                self.client.create_payload_index(name, "thread_id", models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, lookup=True, range=False))
                self.client.create_payload_index(name, "embedder", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD))
        info = self.client.get_collection(name)
        vectors = info.config.params.vectors
        existing = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if existing is None or existing.size != dense_size():
            self.dense_ok = False
            logger.error(
                "memory: collection %s has no dense vector of size %s (DAC_MEMORY_DENSE_DIM); dense recall is off "
                "until the collection is recreated (delete it, then manage.py reindex_memory)", name, dense_size(),
            )


_stores: dict[tuple[str, str], Store] = {}
_broken: dict[tuple[str, str], str] = {}
_stores_lock = threading.Lock()


def _open(url: str, path: str) -> Store:
    timeout = int(conf("DAC_MEMORY_TIMEOUT", 2))
    if url:
        client = QdrantClient(url=url, api_key=conf("QDRANT_API_KEY", "") or None, timeout=timeout, check_compatibility=False)
        return Store(client=client, kind="server", where=url, lock=None)
    if path:
        client = QdrantClient(path=path)
        logger.info("memory: embedded Qdrant at %s (local mode: this process only; several workers need QDRANT_URL)", path)
        return Store(client=client, kind="local", where=path, lock=threading.RLock())
    return Store(client=QdrantClient(location=":memory:"), kind="memory", where=":memory:", lock=threading.RLock())


def get_store() -> Store:
    """This process's store for the current QDRANT_URL / QDRANT_PATH (opened on first use)."""
    key = (settings.QDRANT_URL or "", "" if settings.QDRANT_URL else (settings.QDRANT_PATH or ""))
    store = _stores.get(key)
    if store is not None:
        return store
    if key in _broken:
        raise StoreUnavailable(_broken[key])
    with _stores_lock:
        if key in _stores:
            return _stores[key]
        try:
            store = _open(*key)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if key[1] and not key[0]:
                reason = (
                    f"the embedded Qdrant folder {key[1]} could not be opened ({reason}). Local mode allows one "
                    "process: with several workers (or a command while the server runs) set QDRANT_URL to a Qdrant server"
                )
            logger.error("memory: %s; memory is off in this process", reason)
            _broken[key] = reason
            raise StoreUnavailable(reason) from exc
        _stores[key] = store
        return store


def release_local() -> None:
    """Close on-disk local stores so their folder lock is free for the next process (commands)."""
    with _stores_lock:
        for key, store in list(_stores.items()):
            if store.kind == "local":
                store.client.close()
                del _stores[key]


def reset() -> None:
    """Close and forget every opened store (tests, and `reindex_memory` after it ran)."""
    with _stores_lock:
        for store in _stores.values():
            try:
                store.client.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken client must not raise
                logger.debug("memory: closing %s failed: %s", store.where, exc)
        _stores.clear()
        _broken.clear()
