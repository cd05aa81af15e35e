"""An org's effective memory settings: its MemorySettings row over the DAC_MEMORY_* defaults."""

from __future__ import annotations

from dataclasses import dataclass

from threads.memory.store import conf

MAX_TOP_K = 20


@dataclass(frozen=True)
class Effective:
    enabled: bool
    top_k: int
    min_score: float
    min_dense_score: float
    embeddings: str
    embedding_model: str
    row: object | None  # the MemorySettings row, when the org saved one


def defaults() -> Effective:
    return Effective(
        enabled=bool(conf("DAC_MEMORY_ENABLED", True)),
        top_k=int(conf("DAC_MEMORY_TOP_K", 3)),
        min_score=float(conf("DAC_MEMORY_MIN_SCORE", 1.0)),
        min_dense_score=float(conf("DAC_MEMORY_MIN_DENSE_SCORE", 0.3)),
        embeddings="",
        embedding_model="",
        row=None,
    )


def effective(org_id: int) -> Effective:
    """Call inside the org's tenant context (one small query)."""
    from threads.models import MemorySettings

    base = defaults()
    row = MemorySettings.objects.filter(org_id=org_id).first()
    if row is None:
        return base
    return Effective(
        enabled=base.enabled and row.enabled,
        top_k=row.top_k if row.top_k is not None else base.top_k,
        min_score=row.min_score if row.min_score is not None else base.min_score,
        min_dense_score=base.min_dense_score,
        embeddings=row.embeddings,
        embedding_model=row.embedding_model,
        row=row,
    )
