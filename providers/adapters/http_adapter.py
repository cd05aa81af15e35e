"""The request/response flow every network adapter shares; dialects fill in the hooks.

Timeouts: `complete()` treats `timeout` as a deadline for the whole call. `stream()` applies it
to each wait (connecting, the response headers, and every gap between chunks), so a long answer
that keeps flowing is never cut off, while a provider that stalls is.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from dac.storable_text import storable_text

from .base import (
    BaseAdapter, CompletionResult, Message, ProviderError, ResponseFormat, Sampling, StreamEvent, ToolCall, ToolCallPart, Tools,
    stop_position,
)
from .client import TRANSPORT_ERRORS, Reply, received_text, shared_client
from .http1 import InvalidURL, Response
from .sse import SSEDecoder

logger = logging.getLogger(__name__)

# Error `type` / `code` / `metadata.error_type` values that name a category when no HTTP status
# does (errors embedded in a 200 body or stream often carry no numeric code).
ERROR_TYPE_CATEGORIES: dict[str, str] = {
    "server_error": "unavailable",
    "server": "unavailable",
    "internal_server_error": "unavailable",
    "provider_unavailable": "unavailable",
    "provider_overloaded": "unavailable",
    "rate_limit_exceeded": "rate_limited",
    "request_rate_limit_exceeded": "rate_limited",
    "tokens": "rate_limited",
    "requests": "rate_limited",
    "insufficient_quota": "quota_exceeded",
    "payment_required": "quota_exceeded",
    "invalid_api_key": "auth",
    "authentication": "auth",
    "invalid_request_error": "bad_request",
    "context_length_exceeded": "bad_request",
    "timeout": "timeout",
    "content_filter": "content_filtered",
    "moderation": "content_filtered",
}
_TITLE_RE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")


def category_for_status(status: int) -> str:
    """The category an HTTP error status means when the body says nothing more specific."""
    if status in (401, 403):
        return "auth"
    if status == 402:
        return "quota_exceeded"
    if status in (408, 504):
        return "timeout"
    if status == 429:
        return "rate_limited"
    if 400 <= status < 500:
        return "bad_request"
    return "unavailable"


def category_for_error_type(error: dict[str, Any]) -> str | None:
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    for value in (metadata.get("error_type"), error.get("error_type"), error.get("code"), error.get("type")):
        if isinstance(value, str) and value in ERROR_TYPE_CATEGORIES:
            return ERROR_TYPE_CATEGORIES[value]
    return None


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, else `Retry-After` as seconds or an HTTP date; None when absent."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# How long to wait for the rest of a body after its end marker (see _drain).
_DRAIN_SECONDS = 0.5


def _pairs_joined(held: str, text: str) -> tuple[str, str]:
    """`text` after `held` (a high surrogate kept from the piece before), its surrogate pairs
    written as two code points joined into the characters they encode, and its own trailing high
    surrogate kept back for the next piece: (the text, what is kept)."""
    text, held = held + text, ""
    if text and "\ud800" <= text[-1] <= "\udbff":
        text, held = text[:-1], text[-1]
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass"), held


@dataclass
class _CallSlot:
    """A tool call as its pieces arrive."""

    id: str
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    high_surrogate: str = ""
    signature: str | None = None
    id_made_here: bool = False  # the provider named none: DAC gave it one (clients send it back)


@dataclass
class Accumulator:
    """What a response, or a stream so far, has said.

    With `stop` sequences the answer ends where the first of them to be complete begins, whether
    or not the provider was told about them (Perplexity takes none; an OpenAI-compatible server
    or an OpenRouter model may drop them): text that could be the start of one is held back until
    the next piece shows whether it is, and once one is found the rest is ignored and the answer
    is `ended` with finish reason `stop`."""

    requested_model: str
    stop: tuple[str, ...] = ()
    parts: list[str] = field(default_factory=list)
    model: str | None = None
    finish: str | None = None  # already one of FINISH_REASONS
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    citations: list[str] = field(default_factory=list)
    cost_usd: float | None = None
    tool_calls: list[_CallSlot] = field(default_factory=list)  # in the order they began
    tool_parts: list[ToolCallPart] = field(default_factory=list)  # arrived, not yet passed on
    ended: bool = False  # the provider signalled the end ([DONE] or a terminal chunk)
    first_token_ms: float | None = None
    held: str = ""  # text that may be the start of a stop sequence
    stopped_at_sequence: bool = False
    high_surrogate: str = ""  # a piece's last character, half a pair whose other half may come next
    _slot_of_index: dict[int, int] = field(default_factory=dict)  # a stream's call index → its slot

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add_text(self, text: str | None) -> str:
        """Record a piece of the answer and return what of it may be passed on now. Where a
        provider's text enters DAC, what neither UTF-8 nor PostgreSQL can carry (a lone surrogate
        from a JSON escape such as "\\ud83d", U+0000) becomes U+FFFD: the answer is then
        streamed, saved and audited like any other, where it used to fail (an internal error, or
        a thread's answer left streaming). A pair split across two pieces (an emoji's halves
        escaped in two events) is joined back into its character."""
        if text:
            if self.high_surrogate or "\ud800" <= text[-1] <= "\udbff":
                text, self.high_surrogate = _pairs_joined(self.high_surrogate, text)
            text = storable_text(text)
            if self.stop:
                text = self._before_stop(text)
            if text:
                self.parts.append(text)
        return text or ""

    def _before_stop(self, text: str) -> str:
        if self.stopped_at_sequence:
            return ""
        pending = self.held + text
        cut = stop_position(pending, self.stop)
        if cut is not None:
            self.held, self.stopped_at_sequence, self.ended, self.finish = "", True, True, "stop"
            return pending[:cut]
        keep = max((n for sequence in self.stop for n in range(min(len(sequence) - 1, len(pending)), 0, -1)
                    if pending.endswith(sequence[:n])), default=0)
        self.held = pending[len(pending) - keep:] if keep else ""
        return pending[:len(pending) - keep]

    def release_held(self) -> str:
        """The answer ended without a stop sequence: what was held back is part of it after all
        (half a surrogate pair whose other half never came is U+FFFD)."""
        replaced = ""
        if self.high_surrogate:
            self.high_surrogate = ""
            replaced = self.add_text("\ufffd")
        held, self.held = self.held, ""
        if held:
            self.parts.append(held)
        return replaced + held

    def add_tool_call(self, index: int | None, call_id: Any, name: Any, arguments: Any, signature: Any = None) -> None:
        """Record a tool call (`index` None: a whole one, the next in the answer), or a piece of
        one from a stream, keyed by the stream's `index`: the id and name come first, then the
        arguments in pieces. A piece with a new id under an index already in use begins another
        call (Ollama and others number every call 0). Kept for the stream to pass on
        (`tool_parts`), numbered in the order the calls began, id and name once."""
        call_id = storable_text(call_id) if isinstance(call_id, str) and call_id else None
        position = None if index is None else self._slot_of_index.get(index)
        begins = position is None or bool(call_id and not self.tool_calls[position].id_made_here and self.tool_calls[position].id != call_id)
        if begins:
            position = len(self.tool_calls)
            # A call needs an id for the client to answer it: some providers (Gemini, vLLM,
            # SGLang, LM Studio) send none, and DAC gives it one.
            self.tool_calls.append(_CallSlot(id=call_id) if call_id else _CallSlot(id=f"call_{uuid.uuid4().hex[:24]}", id_made_here=True))
            if index is not None:
                self._slot_of_index[index] = position
        slot = self.tool_calls[position]
        new_id = slot.id if begins else None  # the id goes with the call's first piece
        new_name = storable_text(name) if isinstance(name, str) and name and slot.name is None else None
        slot.name = slot.name or new_name
        if isinstance(signature, str) and signature:
            slot.signature = signature
        pieces = ""
        if isinstance(arguments, str) and (arguments or slot.high_surrogate):
            pieces, slot.high_surrogate = _pairs_joined(slot.high_surrogate, arguments)
            pieces = storable_text(pieces)
            if pieces:
                slot.arguments.append(pieces)
        if new_id or new_name or pieces:
            self.tool_parts.append(ToolCallPart(position, new_id, new_name, pieces))

    def close_tool_calls(self) -> None:
        """The answer is over: a call whose arguments never came takes none ("{}", which a client
        can parse where "" it cannot)."""
        for position, slot in enumerate(self.tool_calls):
            if not slot.arguments and not slot.high_surrogate:
                slot.arguments.append("{}")
                self.tool_parts.append(ToolCallPart(position, None, None, "{}"))

    def finished_tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(slot.id, slot.name or "", "".join(slot.arguments) + ("\ufffd" if slot.high_surrogate else ""), slot.signature)
            for slot in self.tool_calls)

    def add_citation(self, url: Any) -> None:
        if isinstance(url, str) and url and (url := storable_text(url)) not in self.citations:
            self.citations.append(url)


class HTTPAdapter(BaseAdapter):
    """Runs the HTTP exchange; subclasses describe their wire format through the hooks below.

    `check_addresses`: the base URL is an org's own, so every address the client connects to
    must pass `providers.urlsafety.address_allowed` (the URL's check alone could be rebound)."""

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, check_addresses: bool = False) -> None:
        super().__init__(api_key=api_key, base_url=base_url)
        self._check_addresses = check_addresses

    # ---- hooks ------------------------------------------------------------------------------

    def _url(self, model: str, stream: bool) -> str:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _body(self, messages: Sequence[Message], model: str, max_tokens: int | None,
              temperature: float | None, stream: bool, *, stop: Sequence[str] = (),
              response_format: ResponseFormat | None = None, tools: Tools | None = None,
              sampling: Sampling | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _absorb(self, acc: Accumulator, payload: dict[str, Any]) -> str:
        """Fold one response body or stream chunk into `acc`; return its new text."""
        raise NotImplementedError

    def _embedded_error(self, payload: dict[str, Any]) -> ProviderError | None:
        """An error object inside a 200 body or stream chunk, as a ProviderError."""
        return None

    def _is_terminal(self, payload: dict[str, Any]) -> bool:
        """Whether this chunk ends the stream even without a sentinel."""
        return False

    def _category(self, status: int | None, error: dict[str, Any], body: Any) -> str | None:
        """A dialect's own reading of an error; None falls back to the type, then the status."""
        return None

    def _body_retry_after(self, error: dict[str, Any]) -> float | None:
        """A retry hint inside the error body, for providers that put it there."""
        return None

    def _error_message(self, error: dict[str, Any]) -> str:
        return str(error.get("message") or "")

    def _models_url(self) -> str:
        return f"{self.base_url}/models"

    def _model_ids(self, payload: Any) -> list[str]:
        raise NotImplementedError

    # ---- calls ------------------------------------------------------------------------------

    async def complete(self, *, messages: Sequence[Message], model: str, max_tokens: int | None = None,
                       temperature: float | None = None, timeout: float = 30.0, stop: Sequence[str] = (),
                       response_format: ResponseFormat | None = None, tools: Tools | None = None,
                       sampling: Sampling | None = None) -> CompletionResult:
        url = self._url(model, False)
        body = self._body(messages, model, max_tokens, temperature, False, stop=stop, response_format=response_format, tools=tools,
                          sampling=sampling)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await shared_client().send("POST", url, headers=self._headers(), body=body, timeout=timeout,
                                                      check_addresses=self._check_addresses)
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if not response.is_success:
            raise self._http_error(response)
        acc = Accumulator(model, tuple(stop))
        self._take(acc, self._json(response))
        acc.release_held()
        acc.close_tool_calls()
        return self._result(acc, started)

    async def stream(self, *, messages: Sequence[Message], model: str, max_tokens: int | None = None,
                     temperature: float | None = None, timeout: float = 30.0, stop: Sequence[str] = (),
                     response_format: ResponseFormat | None = None, tools: Tools | None = None,
                     sampling: Sampling | None = None) -> AsyncIterator[StreamEvent]:
        url = self._url(model, True)
        body = self._body(messages, model, max_tokens, temperature, True, stop=stop, response_format=response_format, tools=tools,
                          sampling=sampling)
        started = time.perf_counter()
        acc = Accumulator(model, tuple(stop))
        try:
            async with shared_client().stream(url, headers=self._headers(), body=body, timeout=timeout,
                                              check_addresses=self._check_addresses) as response:
                if not 200 <= response.status < 300:
                    raise self._http_error(await _whole(response))
                content_type = response.headers.get("content-type", "")
                if "json" in content_type and "event-stream" not in content_type:
                    # The server ignored the stream flag and answered in one piece.
                    delta = self._take(acc, self._json(await _whole(response)))
                    acc.ended = True
                    if delta:
                        acc.first_token_ms = _ms_since(started)
                    for event in _events(acc, delta):
                        yield event
                else:
                    # aclosing: if our caller stops early, the event reader is closed right away.
                    async with aclosing(self._sse_events(response, acc, started)) as events:
                        async for event in events:
                            yield event
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if not acc.ended and acc.finish is None:
            # The connection closed cleanly but the provider never said it was done.
            raise self._error("unavailable", None, "the stream ended before the provider finished")
        acc.close_tool_calls()
        for event in _events(acc, acc.release_held()):
            yield event
        yield StreamEvent("", self._result(acc, started))

    async def _sse_events(self, response: Response, acc: Accumulator,
                          started: float) -> AsyncIterator[StreamEvent]:
        decoder = SSEDecoder()
        chunks = received_text(response)
        async for text in chunks:
            for data in decoder.feed(text):
                for event in _events(acc, self._on_event(acc, data, started)):
                    yield event
                if acc.stopped_at_sequence:
                    return  # the provider is still writing: the connection is closed, not drained
                if acc.ended:
                    await _drain(chunks)
                    return
        for data in decoder.flush():
            for event in _events(acc, self._on_event(acc, data, started)):
                yield event
            if acc.ended:
                return

    def _on_event(self, acc: Accumulator, data: str, started: float) -> str:
        if data.strip() == "[DONE]":
            acc.ended = True
            return ""
        if not data.strip():
            return ""
        try:
            payload = json.loads(data)
        except ValueError:
            raise self._error("unavailable", 200, f"malformed stream event: {data[:80]!r}") from None
        delta = self._take(acc, payload)
        if (delta or acc.tool_parts) and acc.first_token_ms is None:
            acc.first_token_ms = _ms_since(started)
        if isinstance(payload, dict) and self._is_terminal(payload):
            acc.ended = True
        return delta

    async def list_models(self, timeout: float = 10.0) -> list[str]:
        try:
            async with asyncio.timeout(timeout):
                response = await shared_client().send("GET", self._models_url(), headers=self._headers(), timeout=timeout,
                                                      check_addresses=self._check_addresses)
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if not response.is_success:
            raise self._http_error(response)
        return self._model_ids(self._json(response))

    # ---- shared pieces ----------------------------------------------------------------------

    def _take(self, acc: Accumulator, payload: Any) -> str:
        if not isinstance(payload, dict):
            raise self._error("unavailable", 200, f"unexpected response shape ({type(payload).__name__})")
        error = self._embedded_error(payload)
        if error is not None:
            raise error
        return self._absorb(acc, payload)

    def _result(self, acc: Accumulator, started: float) -> CompletionResult:
        finish = acc.finish or "other"
        if finish == "content_filter" and not acc.text:
            raise self._error("content_filtered", 200, "the provider withheld the answer (content filter)")
        tool_calls = acc.finished_tool_calls()
        if any(not call.name for call in tool_calls):  # a call the client could neither run nor send back
            raise self._error("unavailable", 200, "the provider returned a function call without a name")
        if tool_calls and finish == "stop":
            finish = "tool_calls"
        return CompletionResult(
            text=acc.text,
            model=_storable_model(acc.model) or acc.requested_model,
            provider=self.name,
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            total_tokens=acc.total_tokens,
            latency_ms=_ms_since(started),
            citations=list(acc.citations),
            finish_reason=finish,
            first_token_ms=acc.first_token_ms,
            cost_usd=acc.cost_usd,
            tool_calls=tool_calls,
        )

    def _json(self, response: Reply) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise self._error("unavailable", response.status,
                              f"the response is not JSON: {response.content[:80]!r}") from None

    def _error_from_object(self, error: dict[str, Any], status: int | None, body: Any) -> ProviderError:
        """Map an error object (from an HTTP error body or embedded in a 200) to a ProviderError."""
        category = (
            self._category(status, error, body)
            or (category_for_status(status) if status and status >= 400 else None)
            or category_for_error_type(error)
            or "unavailable"
        )
        message = self._error_message(error) or (f"HTTP {status}" if status else "provider error")
        return self._error(category, status, message, self._body_retry_after(error))

    def _embedded_error_object(self, payload: dict[str, Any]) -> ProviderError | None:
        """A top-level `error` key in a 200 body or chunk; its numeric code, if any, is the status."""
        error = payload.get("error")
        if not error:
            return None
        error = error if isinstance(error, dict) else {"message": str(error)}
        status = int_or_none(error.get("code")) or int_or_none(error.get("http_status"))
        return self._error_from_object(error, status, payload)

    def _http_error(self, response: Reply) -> ProviderError:
        status = response.status
        body = _parse_error_body(response)
        error = _error_object(body)
        if not error:
            error = {"message": _describe_non_json(response)}
        mapped = self._error_from_object(error, status, body)
        retry_after = retry_after_from_headers(response.headers)
        if retry_after is not None:
            mapped.retry_after = retry_after
        logger.info("provider %s answered HTTP %s (%s)", self.name, status, mapped.category)
        return mapped

    def _transport_error(self, exc: Exception) -> ProviderError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            return self._error("timeout", None, f"no answer from {self.name} within the timeout ({detail})")
        if isinstance(exc, InvalidURL):
            return self._error("bad_request", None, f"invalid base URL for {self.name} ({detail})")
        return self._error("unavailable", None, f"could not reach {self.name} ({detail})")


def _events(acc: Accumulator, delta: str) -> list[StreamEvent]:
    """What one chunk gave the stream: its text, then the pieces of tool calls it carried."""
    events = [StreamEvent(delta)] if delta else []
    if acc.tool_parts:
        events += [StreamEvent("", tool_call=part) for part in acc.tool_parts]
        acc.tool_parts.clear()
    return events


def _storable_model(model: Any) -> str | None:
    """The model a provider named, as text DAC can store (see `Accumulator.add_text`)."""
    return storable_text(model) if isinstance(model, str) and model else None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


async def _whole(response: Response) -> Reply:
    return Reply(response.status, response.headers, await response.read())


def _parse_error_body(response: Reply) -> Any:
    # Gateways answer errors with HTML pages: only JSON-decode what claims to be, or looks like, JSON.
    content_type = response.headers.get("content-type", "")
    text = response.text.strip()
    if "json" in content_type or text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return None
    return None


def _error_object(body: Any) -> dict[str, Any]:
    """The error object of the envelopes seen in the wild ({"error": {...}}, {"error": "..."},
    FastAPI's {"detail": ...}, vLLM's top-level {"message": ...})."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # Gemini without alt=sse wraps everything in an array
    if not isinstance(body, dict):
        return {}
    error = body.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    if "detail" in body:
        return {"message": json.dumps(body["detail"])[:500] if not isinstance(body["detail"], str) else body["detail"]}
    if isinstance(body.get("message"), str):
        return body
    return {}


def _describe_non_json(response: Reply) -> str:
    text = response.text
    title = _TITLE_RE.search(text)
    if title:
        return " ".join(title.group(1).split())
    plain = " ".join(_TAG_RE.sub(" ", text).split())
    return plain[:200] or f"HTTP {response.status} with an empty body"


async def _drain(chunks: AsyncIterator[str]) -> None:
    """Read what follows the end marker (normally just the end of the body) so the connection
    goes back to the pool instead of being closed: the next call skips a handshake.
    Bounded: a provider that keeps the body open after its end marker is simply let go."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except TRANSPORT_ERRORS:
        pass
