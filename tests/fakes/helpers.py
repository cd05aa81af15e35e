"""Small helpers shared by adapter tests (a plain module, not a conftest: import what you use)."""

from __future__ import annotations

import time
from typing import Any

# Adapters whose wire format a FakeProvider speaks; their names match the fake's provider names.
HTTP_ADAPTERS = ("openai", "openai_compatible", "openrouter", "perplexity", "gemini")
KEY = "sk-test-4f1d2c3b-secret-key-value"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is DAC?"},
    {"role": "assistant", "content": "A gateway."},
    {"role": "user", "content": "Tell me more about it."},
]


async def collect(adapter: Any, **kwargs: Any) -> tuple[list[Any], list[float], BaseException | None]:
    """Run adapter.stream(); return the events, when each arrived (monotonic), and what it raised."""
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("model", "test-model")
    events: list[Any] = []
    arrived: list[float] = []
    try:
        async for event in adapter.stream(**kwargs):
            events.append(event)
            arrived.append(time.monotonic())
    except Exception as exc:  # noqa: BLE001 - returned so tests can look at both the deltas and the error
        return events, arrived, exc
    return events, arrived, None


def deltas(events: list[Any]) -> str:
    return "".join(event.delta for event in events)


def adapter_for(fake: Any, key: str | None = KEY) -> Any:
    """The adapter of a FakeProvider's provider, pointed at it."""
    from providers.adapters import get_adapter

    return get_adapter(fake.provider, api_key=key, base_url=fake.base_url)
