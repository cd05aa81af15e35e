"""What a fake provider should do for one request (Behaviour) and what it received (RecordedRequest)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

CATEGORIES = ("auth", "bad_request", "rate_limited", "quota_exceeded", "content_filtered", "timeout", "unavailable")
DEFAULT_TEXT = "Hello from the fake provider. Everything is working."
_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


@dataclass(frozen=True)
class Behaviour:
    """How to answer one request. Every field has a working default: `Behaviour()` is a success.

    Answer content
      text            the answer (streams split it into pieces; joined they give exactly this text)
      echo            answer "Echo: <last user message>" instead of `text`
      model           the model the response names (default: the one requested)
      finish_reason   "stop" | "length" | "content_filter" | "tool_calls", sent in the provider's
                      own vocabulary (Gemini MAX_TOKENS, SAFETY...)
      input_tokens / output_tokens / thoughts_tokens (Gemini)   usage to report; defaults are
                      word counts of the request and of the answer pieces
      citations       URLs (Perplexity sends them as citations + search_results); None: two examples
      done_sentinel   end SSE streams with `data: [DONE]` (ignored for Gemini, which never sends it)
      tool_calls      (name, arguments JSON) of each function the answer calls, instead of text
                      (finish_reason tool_calls); finish_reason "tool_calls" alone calls `lookup`

    Streaming
      chunks          split the text into exactly this many pieces (default: one per word; a
                      text shorter than `chunks` characters is padded with filler words)
      chunk_gap       seconds between two text pieces of a stream
      one_packet      send the whole stream (head, pieces, end) in one write, as a fast provider's
                      pieces arrive together in one packet

    Failures
      error           a category from CATEGORIES: the provider's real response for it (status,
                      headers, body). "content_filtered" is a 200 block where the provider does
                      that (OpenAI-style, Gemini) and a 403 moderation error on OpenRouter.
                      "timeout" is a 408 (OpenRouter), a 504 (Gemini), or a hang before the
                      headers (the others, which send nothing for it)
      status          override the error's HTTP status (e.g. 404 for bad_request, 500 for unavailable)
      message         override the error's message
      retry_after     seconds: a Retry-After header (Gemini: RetryInfo.retryDelay in the body)
      html            send the error as an HTML gateway page instead of JSON
      midstream_error a category: a 200 stream that sends `error_after` pieces, then the
                      provider's in-stream error object
      delay           seconds to wait before the status line (slow provider)
      stall_after_first  seconds to pause after the first text piece (a hang, if long enough)
      drop_after      close the connection after this many text pieces (JSON: mid-body)
      disconnect      close the connection without answering at all
      garbage         a 200 whose body is not valid JSON / not valid SSE JSON
    """

    text: str = DEFAULT_TEXT
    echo: bool = False
    model: str | None = None
    finish_reason: str = "stop"
    input_tokens: int | None = None
    output_tokens: int | None = None
    thoughts_tokens: int = 0
    citations: list[str] | None = None
    done_sentinel: bool = True
    tool_calls: tuple[tuple[str, str], ...] = ()
    chunks: int | None = None
    chunk_gap: float = 0.0
    one_packet: bool = False
    error: str | None = None
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    html: bool = False
    midstream_error: str | None = None
    error_after: int = 1
    delay: float = 0.0
    stall_after_first: float = 0.0
    drop_after: int | None = None
    disconnect: bool = False
    garbage: bool = False

    def __post_init__(self) -> None:
        for name in ("error", "midstream_error"):
            value = getattr(self, name)
            if value is not None and value not in CATEGORIES:
                raise ValueError(f"{name}={value!r}: expected one of {CATEGORIES}")
        if self.finish_reason not in ("stop", "length", "content_filter", "tool_calls"):
            raise ValueError(f"finish_reason={self.finish_reason!r}")

    def calls(self) -> tuple[tuple[str, str], ...]:
        """The (name, arguments) of the functions the answer calls."""
        if self.tool_calls:
            return self.tool_calls
        return (("lookup", "{}"),) if self.finish_reason == "tool_calls" else ()

    def but(self, **changes: Any) -> Behaviour:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def answer(self, request: RecordedRequest | None = None, stop: Sequence[str] = ()) -> str:
        """The full answer text for `request` (what the pieces join to)."""
        return "".join(self.pieces(request, stop))

    def pieces(self, request: RecordedRequest | None = None, stop: Sequence[str] = ()) -> list[str]:
        """The text pieces a stream sends, in order: the text up to the first of the `stop`
        sequences the provider honours (as a real model stops before one)."""
        text = self.text
        if self.echo:
            text = "Echo: " + (request.last_user_text() if request else "")
        found = [at for at in (text.find(sequence) for sequence in stop) if at >= 0]
        return split_text(text[:min(found)] if found else text, self.chunks)

    def usage(self, request: RecordedRequest | None, stop: Sequence[str] = ()) -> tuple[int, int]:
        """(input tokens, output tokens) to report."""
        inputs = self.input_tokens
        if inputs is None:
            inputs = request.prompt_words() if request else 1
        outputs = self.output_tokens if self.output_tokens is not None else len(self.pieces(request, stop))
        return inputs, outputs


def split_text(text: str, chunks: int | None) -> list[str]:
    if chunks is None:
        return re.findall(r"\S+\s*|\s+", text) or [""]
    if chunks < 1:
        raise ValueError("chunks must be >= 1")
    i = 0
    while len(text) < chunks:
        text += " " + _FILLER[i % len(_FILLER)]
        i += 1
    size, extra = divmod(len(text), chunks)
    out, start = [], 0
    for n in range(chunks):
        end = start + size + (1 if n < extra else 0)
        out.append(text[start:end])
        start = end
    return out


@dataclass
class RecordedRequest:
    """One request as the fake received it. Header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    received_at: float = 0.0
    _json: Any = field(default=None, repr=False)

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None if empty or not JSON)."""
        if self._json is None and self.body:
            try:
                self._json = json.loads(self.body)
            except ValueError:
                return None
        return self._json

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) turns, for chat-completions and Gemini bodies alike."""
        body = self.json if isinstance(self.json, dict) else {}
        if "messages" in body:
            return [(m.get("role", ""), _text(m.get("content"))) for m in body["messages"]]
        turns = [("system", _text(p.get("text")))
                 for p in (body.get("systemInstruction") or {}).get("parts") or []]
        for content in body.get("contents") or []:
            role = "assistant" if content.get("role") == "model" else content.get("role", "user")
            turns.append((role, "".join(_text(p.get("text")) for p in content.get("parts") or [])))
        return turns

    def last_user_text(self) -> str:
        return next((text for role, text in reversed(self.messages()) if role == "user"), "")

    def prompt_words(self) -> int:
        return sum(len(text.split()) + 3 for _, text in self.messages()) or 1


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


@dataclass
class Reply:
    """A complete HTTP answer (status, headers, body) for the server to send."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), "application/json", dict(headers or {}))

    @classmethod
    def html(cls, status: int, title: str, server: str = "cloudflare") -> Reply:
        page = (f"<html>\n<head><title>{title}</title></head>\n<body>\n<center><h1>{title}</h1></center>\n"
                f"<hr><center>{server}</center>\n</body>\n</html>\n")
        return cls(status, page.encode(), "text/html")


@dataclass
class StreamPlan:
    """An SSE answer: events tagged "prelude" (before text), "text" or "tail" (after text)."""

    events: list[tuple[str, bytes]]
    content_type: str = "text/event-stream; charset=utf-8"
    error_events: list[bytes] = field(default_factory=list)  # what a mid-stream error sends
    array: bool = False  # Gemini without alt=sse: a JSON array, not SSE
