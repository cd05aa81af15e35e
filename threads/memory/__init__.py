"""Org memory (issue 7; docs/memory.md): messages indexed in Qdrant, recalled across threads.

The send pipeline uses four names and nothing else:
`recall_for(org_id=, thread=, text=) -> list[Recalled]`, `record_provenance(...)`,
`index_messages(org_id=, message_ids=)` and `Recalled`. Thread deletion calls
`forget_thread(org_id=, thread_id=)`. All of them are safe to call when Qdrant is down.

Modules: text (tokens → sparse vectors), store (Qdrant client, collection, org filter),
embeddings (optional dense vectors through the org's key), config (effective settings),
services (backlog, forget, rebuild, settings), selectors (recall, search, status), worker
(the indexer thread), views / apis / urls (the /memory/ page and /api/v1/memory/).
"""

from __future__ import annotations

from threads.memory.selectors import MemoryUnavailable, Recalled, memory_search, memory_status, recall_for
from threads.memory.services import (
    forget_message,
    forget_org,
    forget_thread,
    index_messages,
    memory_settings_update,
    process_backlog,
    reindex_org,
)

__all__ = [
    "MemoryUnavailable",
    "Recalled",
    "forget_message",
    "forget_org",
    "forget_thread",
    "index_messages",
    "memory_search",
    "memory_settings_update",
    "memory_status",
    "process_backlog",
    "recall_for",
    "record_provenance",
    "reindex_org",
]


def record_provenance(*, org_id: int, actor, message_id: int | None, thread_id: int, recalled: list[Recalled]) -> None:
    """Write which memories an answer read (event "memory.read"): message ids, thread ids, scores."""
    from audit.services import audit_record

    audit_record(
        org_id=org_id, actor=actor, event="memory.read", target=f"message:{message_id}",
        details={"thread_id": thread_id, "memories": [r.to_dict() for r in recalled]},
    )
