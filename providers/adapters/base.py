"""The provider contract shared by every adapter: result types, the error family, the base class.

Nothing here imports Django: adapters run in plain asyncio code (tests, benchmarks, commands)
as well as inside the app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dac.storable_text import storable_text

# Exactly these seven: callers (retry policy, fallback, metrics) switch on them.
ERROR_CATEGORIES: tuple[str, ...] = (
    "auth",
    "bad_request",
    "rate_limited",
    "quota_exceeded",
    "content_filtered",
    "timeout",
    "unavailable",
)
# Categories worth another attempt (same provider after a pause, or the next one in the chain).
RETRYABLE_CATEGORIES: frozenset[str] = frozenset({"rate_limited", "timeout", "unavailable"})
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "content_filter", "tool_calls", "other")

Message = dict[str, Any]

# Providers echo keys in masked form ("sk-VKMIs****...wjh3": the first and last characters are
# real), and some relay upstream bodies that may hold whole keys. Scrub anything key-shaped.
_MASKED_RE = re.compile(r"\S*\*{4,}\S*")
_KEY_LIKE_RE = re.compile(r"\b(?:sk-|pplx-|AIza|xai-|gsk_)[A-Za-z0-9_\-]{8,}")
REDACTED = "[redacted]"


def redact(text: str, secret: str | None = None) -> str:
    """Remove `secret` (and anything that looks like an API key, masked or not) from `text`."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, REDACTED)
    text = _MASKED_RE.sub(REDACTED, text)
    return _KEY_LIKE_RE.sub(REDACTED, text)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a client tunes the choice of tokens, beyond temperature (OpenAI's fields and ranges;
    logit_bias's token ids are the model's own), and how long a reasoning model thinks first
    (`reasoning_effort`, one of REASONING_EFFORTS); None: the provider's default."""

    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: str | None = None
    logit_bias: dict[str, float] | None = None  # token id → -100..100, for the providers that take it

    def given(self) -> dict[str, Any]:
        """The fields set, by their OpenAI name."""
        return {name: value for name in ("top_p", "seed", "presence_penalty", "frequency_penalty", "reasoning_effort", "logit_bias")
                if (value := getattr(self, name)) is not None}


# OpenAI's reasoning_effort values, least thinking first ("none": gpt-5.1 and later; "xhigh": the
# newest). Providers with fewer levels get the nearest they have.
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")


def nearest_effort(effort: str, levels: Sequence[str]) -> str:
    """Of the `levels` a model takes (some of REASONING_EFFORTS), the one nearest `effort`; of two
    as near, the one that thinks more."""
    wanted = REASONING_EFFORTS.index(effort)
    return min(levels, key=lambda level: (abs(REASONING_EFFORTS.index(level) - wanted), -REASONING_EFFORTS.index(level)))


@dataclass(frozen=True, slots=True)
class Tools:
    """Functions the model may call, in OpenAI's shape (each `{"type": "function", "function":
    {"name", "description"?, "parameters"?, "strict"?}}`), and how it may choose: "auto",
    "required", "none" or `{"type": "function", "function": {"name": ...}}`."""

    functions: tuple[dict[str, Any], ...]
    choice: str | dict[str, Any] = "auto"
    parallel: bool | None = None  # parallel_tool_calls, for the providers that take it

    def names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.functions]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks the client to make: `arguments` is JSON text, as the model wrote it.
    `signature`: what the provider needs back with the call in the conversation's next request
    (Gemini's thoughtSignature); never shown to the client."""

    id: str
    name: str
    arguments: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A piece of a tool call as a stream delivers it: the call's `index` in the answer, its id
    and name with its first piece, then pieces of its arguments."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class CompletionResult:
    """A finished answer. Token counts are None when the provider did not report them."""

    text: str
    model: str
    provider: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    latency_ms: float = 0.0
    citations: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    # Time to the first text delta (streams only): what a user perceives as responsiveness.
    first_token_ms: float | None = None
    # Cost in USD when the provider reports it (Perplexity usage.cost, OpenRouter usage.cost).
    cost_usd: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output a client asked for: any JSON object (`json_object`), or JSON matching
    `schema` (`json_schema`, OpenAI's shape: a name, the schema, whether to hold to it strictly).
    Each adapter asks its provider for it in the provider's own terms."""

    type: str  # "json_object" | "json_schema"
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(frozen=True)
class StreamEvent:
    """One step of a stream: new text in `delta`, or a piece of a tool call; only the last event
    carries `result`."""

    delta: str
    result: CompletionResult | None = None
    tool_call: ToolCallPart | None = None


class ProviderError(Exception):
    """A provider call failed. `category` is one of ERROR_CATEGORIES; `status` the HTTP status
    (or the code a provider embedded in a 200 body), None when no response was received."""

    def __init__(
        self,
        category: str,
        status: int | None = None,
        message: str = "",
        retry_after: float | None = None,
        *,
        provider: str | None = None,
    ) -> None:
        if category not in ERROR_CATEGORIES:
            raise ValueError(f"unknown provider error category {category!r}")
        self.category = category
        self.status = status
        # Defence in depth: adapters scrub their own key, this catches key-shaped leftovers.
        self.message = redact(str(message))[:1000]
        self.retry_after = retry_after if retry_after is None or retry_after >= 0 else None
        self.provider = provider
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.category in RETRYABLE_CATEGORIES

    def __str__(self) -> str:
        where = f"{self.provider} " if self.provider else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{self.category}{status}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ProviderError(category={self.category!r}, status={self.status!r}, "
            f"message={self.message!r}, retry_after={self.retry_after!r}, provider={self.provider!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keeps pickling (e.g. across processes) working
        return (_rebuild_error, (self.category, self.status, self.message, self.retry_after, self.provider))


def _rebuild_error(category: str, status: int | None, message: str, retry_after: float | None,
                   provider: str | None) -> ProviderError:
    return ProviderError(category, status, message, retry_after, provider=provider)


class BaseAdapter:
    """What every adapter offers. Subclasses set `name` and `default_model` and implement the calls.

    `complete()` returns a CompletionResult; `stream()` yields StreamEvents as text arrives and ends
    with one whose `result` is set; both raise ProviderError. `stop` sequences end the answer before
    them (finish reason `stop`, the sequence itself not part of the text), whether or not the
    provider takes them; `response_format` asks for JSON; `tools` offers functions to call (the
    answer's `tool_calls`; adapters whose `takes_tools` is False are never given them);
    `sampling` carries top_p, seed, the penalties and logit_bias, each where the provider takes it
    (adapters whose `takes_logit_bias` is False are never given a bias), and the
    reasoning effort, in each provider's terms for the models that reason.
    `check_key()` makes the cheapest real
    call that proves the key works. No retries happen here: bounded retries are the caller's job.
    """

    name: ClassVar[str] = ""
    default_model: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None
    takes_tools: ClassVar[bool] = True
    # Whether the provider takes `logit_bias` (routing passes over those that do not).
    takes_logit_bias: ClassVar[bool] = True

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None) -> None:
        self._api_key = api_key or ""
        base = base_url or self.default_base_url
        if not base:
            raise ValueError(f"the {self.name} adapter needs a base_url")
        self.base_url = base.rstrip("/")

    def __repr__(self) -> str:  # never the key
        return f"<{type(self).__name__} {self.name} base_url={self.base_url!r}>"

    async def complete(
        self,
        *,
        messages: Sequence[Message],
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float = 30.0,
        stop: Sequence[str] = (),
        response_format: ResponseFormat | None = None,
        tools: Tools | None = None,
        sampling: Sampling | None = None,
    ) -> CompletionResult:
        raise NotImplementedError

    def stream(
        self,
        *,
        messages: Sequence[Message],
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float = 30.0,
        stop: Sequence[str] = (),
        response_format: ResponseFormat | None = None,
        tools: Tools | None = None,
        sampling: Sampling | None = None,
    ) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def list_models(self, timeout: float = 10.0) -> list[str]:
        raise NotImplementedError

    async def check_key(self, timeout: float = 10.0) -> None:
        """Return None if the key works, else raise ProviderError (usually `auth`)."""
        await self.list_models(timeout=timeout)

    def _error(self, category: str, status: int | None, message: str,
               retry_after: float | None = None) -> ProviderError:
        """A ProviderError with this adapter's key scrubbed out of the message, and what UTF-8 and
        PostgreSQL cannot carry replaced (it is saved with a failed answer)."""
        return ProviderError(category, status, storable_text(redact(message, self._api_key)), retry_after, provider=self.name)


def stop_position(text: str, stop: Sequence[str]) -> int | None:
    """Where an answer ends for `stop`: the start of the sequence that is complete first in `text`
    (as a model stops as soon as one is, wherever a longer one began), or None."""
    found = [(at + len(sequence), at) for sequence in stop if (at := text.find(sequence)) >= 0]
    return min(found)[1] if found else None


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or OpenAI-style typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)
