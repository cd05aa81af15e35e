"""Provider adapters: one module per provider behind one contract (see base.BaseAdapter).

    adapter = get_adapter("openai", api_key=key, base_url=None)   # base_url overrides the default
    result = await adapter.complete(messages=[...], model="gpt-4o-mini", timeout=30.0)
    async for event in adapter.stream(messages=[...], model="gpt-4o-mini"):
        ...  # event.delta as it arrives; the last event carries event.result

Failures raise ProviderError with `.category` in ERROR_CATEGORIES. No Django imports here.
"""

from __future__ import annotations

from typing import Any

from .base import (
    ERROR_CATEGORIES,
    FINISH_REASONS,
    REASONING_EFFORTS,
    RETRYABLE_CATEGORIES,
    BaseAdapter,
    CompletionResult,
    ProviderError,
    ResponseFormat,
    Sampling,
    StreamEvent,
    ToolCall,
    ToolCallPart,
    Tools,
)
from .client import aclose_shared_client, shared_client
from .demo import DemoAdapter
from .gemini import GeminiAdapter
from .openai import OpenAIAdapter
from .openai_compatible import OpenAICompatibleAdapter
from .openrouter import OpenRouterAdapter
from .perplexity import PerplexityAdapter

ADAPTERS: dict[str, type[BaseAdapter]] = {
    cls.name: cls
    for cls in (OpenAIAdapter, PerplexityAdapter, GeminiAdapter, OpenRouterAdapter,
                OpenAICompatibleAdapter, DemoAdapter)
}
PROVIDER_NAMES: tuple[str, ...] = tuple(ADAPTERS)


def get_adapter(name: str, *, api_key: str | None = None, base_url: str | None = None,
                **options: Any) -> BaseAdapter:
    """The adapter for provider `name`. `options` go to the adapter (e.g. demo's chunk_delay).

    Raises ValueError for an unknown name, or for openai_compatible without a base_url.
    """
    try:
        cls = ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDER_NAMES)}") from None
    return cls(api_key=api_key, base_url=base_url, **options)


__all__ = [
    "ADAPTERS",
    "ERROR_CATEGORIES",
    "FINISH_REASONS",
    "PROVIDER_NAMES",
    "REASONING_EFFORTS",
    "RETRYABLE_CATEGORIES",
    "BaseAdapter",
    "CompletionResult",
    "ProviderError",
    "ResponseFormat",
    "Sampling",
    "StreamEvent",
    "ToolCall",
    "ToolCallPart",
    "Tools",
    "aclose_shared_client",
    "get_adapter",
    "shared_client",
]
