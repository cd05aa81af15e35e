"""What the fake upstream answers and the load generator expects (shared by both)."""

from __future__ import annotations

_WORDS = ("Benchmarks", " measure", " what", " a", " gateway", " adds", " to", " every", " call", ";")


def expected_pieces(chunks: int) -> list[str]:
    """The answer's text as `chunks` stream deltas (the plain answer is their concatenation)."""
    return [f"{_WORDS[i % len(_WORDS)]}{'' if i < len(_WORDS) else i}" for i in range(chunks)]


def expected_text(chunks: int) -> str:
    return "".join(expected_pieces(chunks))
