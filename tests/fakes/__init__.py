"""Fake LLM providers that speak each real wire format over real HTTP on 127.0.0.1.

Written from docs/provider-wire-formats.md (not from recorded fixtures), and independent of
providers.adapters, so an adapter bug is not mirrored by its fake. One fake per wire format:
OpenAI-style chat completions in four dialects (openai, openai_compatible, openrouter,
perplexity) and Gemini.

    from tests.fakes import Behaviour, FakeProvider

    with FakeProvider("gemini") as fake:
        fake.enqueue(Behaviour(chunks=3, chunk_gap=0.1))          # the next request
        fake.enqueue(Behaviour(error="quota_exceeded", retry_after=30))
        fake.behaviour = Behaviour(text="Default answer")          # all requests after the queue
        fake.base_url                                              # http://127.0.0.1:PORT/v1beta
        fake.requests[0].path, fake.requests[0].headers, fake.requests[0].json

See Behaviour for every knob (success, streaming pieces and gaps, each error category in the
provider's real shape, Retry-After, slow headers, stalls, dropped connections, garbage bodies)
and server.py for the server itself and the standalone command line.
"""

from typing import TYPE_CHECKING, Any

from .behaviour import (
    CATEGORIES,
    DEFAULT_TEXT,
    Behaviour,
    RecordedRequest,
    Reply,
    split_text,
)

if TYPE_CHECKING:
    from .server import PROVIDERS, FakeProvider


def __getattr__(name: str) -> Any:
    # Imported lazily so `python -m tests.fakes.server` does not load server.py twice.
    if name in ("FakeProvider", "PROVIDERS"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CATEGORIES",
    "DEFAULT_TEXT",
    "PROVIDERS",
    "Behaviour",
    "FakeProvider",
    "RecordedRequest",
    "Reply",
    "split_text",
]
