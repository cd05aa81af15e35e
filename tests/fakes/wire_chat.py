"""The chat-completions wire format, in the dialects of OpenAI (and OpenAI-compatible servers),
OpenRouter and Perplexity. Written from docs/provider-wire-formats.md, sections 1, 3 and 4."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from .behaviour import Behaviour, RecordedRequest, Reply, StreamPlan

DEFAULT_CITATIONS = ["https://example.org/source-one", "https://example.com/source-two"]
_ids = itertools.count(1)


@dataclass(frozen=True)
class Route:
    kind: str  # "chat", "models" or "unknown"
    stream: bool = False
    model: str = ""
    sse: bool = True  # Gemini only: False when alt=sse is missing


def sse(payload: Any, sep: bytes = b"\n\n") -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return b"data: " + data.encode() + sep


def masked(key: str | None) -> str:
    """How OpenAI echoes a wrong key: the first 8 and last 4 characters, stars between."""
    if not key:
        return "<empty>"
    return key[:8] + "*" * max(len(key) - 12, 4) + key[-4:] if len(key) > 12 else "*" * len(key)


class ChatWire:
    """One dialect of chat completions: "openai", "openai_compatible", "openrouter", "perplexity"."""

    MODELS: ClassVar[dict[str, list[str]]] = {
        "openai": ["gpt-4o-mini", "gpt-4o", "o4-mini"],
        "openai_compatible": ["llama3.2", "qwen2.5:7b"],
        "openrouter": ["openrouter/auto", "openai/gpt-4o-mini", "google/gemini-2.5-flash"],
        "perplexity": [],
    }

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.prefix = "" if provider == "perplexity" else "/v1"
        # Filtered output is an HTTP 200 with finish_reason content_filter; OpenRouter's
        # moderation answers 403 instead.
        self.filtered_is_200 = provider != "openrouter"

    # ---- requests ---------------------------------------------------------------------------

    def route(self, req: RecordedRequest) -> Route:
        body = req.json if isinstance(req.json, dict) else {}
        if req.method == "POST" and req.path == f"{self.prefix}/chat/completions":
            return Route("chat", stream=body.get("stream") is True, model=str(body.get("model") or ""))
        if req.method == "GET" and req.path == f"{self.prefix}/models" and self.provider != "perplexity":
            return Route("models")
        return Route("unknown")

    def key(self, req: RecordedRequest) -> str | None:
        return req.bearer

    def stop_sequences(self, req: RecordedRequest) -> list[str]:
        """The stop sequences the model stops before (Perplexity takes no `stop`: it ignores it)."""
        body = req.json if isinstance(req.json, dict) else {}
        stop = body.get("stop")
        if self.provider == "perplexity" or not stop:
            return []
        return [stop] if isinstance(stop, str) else list(stop)

    def refusal(self, req: RecordedRequest) -> str | None:
        """Why the provider would refuse the request's stop or response_format with a 400."""
        body = req.json if isinstance(req.json, dict) else {}
        stop, wanted = body.get("stop"), body.get("response_format")
        if isinstance(stop, list) and len(stop) > 4 and self.provider != "perplexity":
            return "Invalid 'stop': array too long. Expected an array with maximum length 4."
        if not isinstance(wanted, dict):
            return None
        kinds = ("json_schema", "regex") if self.provider == "perplexity" else ("text", "json_object", "json_schema")
        if wanted.get("type") not in kinds:
            return f"Invalid value: '{wanted.get('type')}'. Supported values are: {', '.join(map(repr, kinds))}."
        spec = wanted.get("json_schema")
        if wanted["type"] == "json_schema" and self.provider == "perplexity":
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                return "response_format.json_schema.schema is required."
        elif wanted["type"] == "json_schema" and not (isinstance(spec, dict) and spec.get("name")):
            return "Missing required parameter: 'response_format.json_schema.name'."
        return None

    # ---- success ----------------------------------------------------------------------------

    def _base(self, b: Behaviour, route: Route, chunk: bool) -> dict[str, Any]:
        n = next(_ids)
        ids = {"openrouter": f"gen-{int(time.time())}-fake{n:08d}", "perplexity": str(uuid.uuid4())}
        base: dict[str, Any] = {
            "id": ids.get(self.provider, f"chatcmpl-fake{n:024d}"),
            "object": "chat.completion.chunk" if chunk else "chat.completion",
            "created": int(time.time()),
            "model": b.model or route.model or "fake-model",
        }
        if self.provider == "openrouter":
            base["provider"] = "FakeUpstream"
        return base

    def _usage(self, b: Behaviour, req: RecordedRequest, outputs: int | None = None) -> dict[str, Any]:
        inputs, total_out = b.usage(req, self.stop_sequences(req))
        out = total_out if outputs is None else outputs
        usage: dict[str, Any] = {"prompt_tokens": inputs, "completion_tokens": out, "total_tokens": inputs + out}
        if self.provider == "openrouter":
            usage.update(cost=round((inputs + 3 * out) * 1e-6, 8), is_byok=False,
                         prompt_tokens_details={"cached_tokens": 0}, completion_tokens_details={"reasoning_tokens": 0})
        elif self.provider == "perplexity":
            cost_in, cost_out = inputs * 1e-6, out * 1e-6
            usage.update(search_context_size="low", cost={
                "input_tokens_cost": cost_in, "output_tokens_cost": cost_out, "request_cost": 0.005,
                "total_cost": round(cost_in + cost_out + 0.005, 6)})
        else:
            usage.update(prompt_tokens_details={"cached_tokens": 0, "audio_tokens": 0},
                         completion_tokens_details={"reasoning_tokens": 0, "audio_tokens": 0})
        return usage

    def _citations(self, b: Behaviour) -> list[str]:
        return list(DEFAULT_CITATIONS if b.citations is None else b.citations)

    def _finish(self, b: Behaviour, blocked: bool) -> str:
        return "content_filter" if blocked else "tool_calls" if b.calls() else b.finish_reason

    def success(self, b: Behaviour, req: RecordedRequest, route: Route, blocked: bool = False) -> Reply:
        text = None if blocked else b.answer(req, self.stop_sequences(req))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if b.calls() and not blocked:
            message["content"] = None  # a turn that calls functions says nothing else
            message["tool_calls"] = [{"id": f"call_fake{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
                                     for i, (name, arguments) in enumerate(b.calls(), start=1)]
        if self.provider in ("openai", "openai_compatible"):
            message.update(refusal=None, annotations=[])
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self._finish(b, blocked)}
        if self.provider != "perplexity":
            choice["logprobs"] = None
        if self.provider == "openrouter":
            choice["native_finish_reason"] = choice["finish_reason"]
        body = {**self._base(b, route, chunk=False), "choices": [choice], "usage": self._usage(b, req)}
        if self.provider == "perplexity":
            body["citations"] = self._citations(b)
            body["search_results"] = [{"title": f"Source {i + 1}", "url": url, "date": "2026-01-01", "source": "web"}
                                      for i, url in enumerate(body["citations"])]
        elif self.provider == "openai":
            body.update(service_tier="default", system_fingerprint="fp_fake")
        return Reply.json(200, body)

    def stream(self, b: Behaviour, req: RecordedRequest, route: Route, blocked: bool = False) -> StreamPlan:
        body = req.json if isinstance(req.json, dict) else {}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        pieces = [] if blocked else b.pieces(req, self.stop_sequences(req))
        events: list[tuple[str, bytes]] = []
        base = self._base(b, route, chunk=True)
        pplx = self.provider == "perplexity"

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "delta": delta}
            if not pplx or finish:
                choice["finish_reason"] = finish
            if self.provider == "openrouter":
                choice["native_finish_reason"] = finish
            out = {**base, "choices": [choice], **extra}
            if self.provider == "openai":
                out["obfuscation"] = "x" * (next(_ids) % 9 + 1)  # random padding, to be ignored
            if include_usage and self.provider in ("openai", "openai_compatible"):
                out["usage"] = None
            return out

        if self.provider == "openrouter":
            events += [("prelude", b": OPENROUTER PROCESSING\n\n")] * 2
        if not pplx:
            events.append(("prelude", sse(chunk({"role": "assistant", "content": ""}))))
        if not pplx and b.calls() and not blocked:
            pieces = []  # a turn that calls functions says nothing else
            for i, (name, arguments) in enumerate(b.calls()):
                # The id and name first, then the arguments in pieces, keyed by the call's index.
                third = max(len(arguments) // 3, 1)
                first = {"index": i, "id": f"call_fake{i + 1}", "type": "function", "function": {"name": name, "arguments": ""}}
                events.append(("text", sse(chunk({"role": "assistant", "content": None, "tool_calls": [first]} if i == 0
                                                 else {"tool_calls": [first]}))))
                for at in range(0, len(arguments), third):
                    events.append(("text", sse(chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[at:at + third]}}]}))))
        for i, piece in enumerate(pieces):
            if pplx:  # running usage and the full citation list on every chunk
                extra = {"usage": self._usage(b, req, outputs=i + 1), "citations": self._citations(b)}
                events.append(("text", sse(chunk({"role": "assistant", "content": piece}, **extra))))
            else:
                events.append(("text", sse(chunk({"content": piece}))))
        finish = self._finish(b, blocked)
        if pplx:
            done = {**chunk({"role": "assistant", "content": ""}, finish), "object": "chat.completion.done",
                    "usage": self._usage(b, req), "citations": self._citations(b)}
            events.append(("tail", sse(done)))
        else:
            events.append(("tail", sse(chunk({}, finish))))
            if self.provider == "openrouter" or include_usage:
                events.append(("tail", sse({**chunk({}), "choices": [], "usage": self._usage(b, req)})))
        if b.done_sentinel:
            events.append(("tail", sse("[DONE]")))
        return StreamPlan(events)

    # ---- failures ---------------------------------------------------------------------------

    def error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> Reply | None:
        """The provider's answer for an error category; None means "hang" (no timeout response)."""
        build = {"openrouter": self._openrouter_error, "perplexity": self._perplexity_error}.get(
            self.provider, self._openai_error)
        reply = build(category, b, req, route)
        if reply is not None and b.retry_after is not None:
            reply.headers["Retry-After"] = f"{b.retry_after:g}"
        return reply

    def _openai_error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> Reply | None:
        key = self.key(req)
        table: dict[str, tuple[int, str, str, str | None, str | None]] = {
            "auth": (401, (f"Incorrect API key provided: {masked(key)}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys."),
                     "invalid_request_error", None, "invalid_api_key"),
            "bad_request": (400, ("This model's maximum context length is 128000 tokens. However, your messages "
                            "resulted in 130412 tokens. Please reduce the length of the messages."),
                            "invalid_request_error", "messages", "context_length_exceeded"),
            "rate_limited": (429, (f"Rate limit reached for {route.model or 'gpt-4o-mini'} in organization org-fake "
                             "on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."),
                             "requests", None, "rate_limit_exceeded"),
            "quota_exceeded": (429, "You exceeded your current quota, please check your plan and billing details.",
                               "insufficient_quota", None, "insufficient_quota"),
            "unavailable": (503, "The engine is currently overloaded, please try again later",
                            "server_error", None, None),
        }
        if category == "timeout":
            return None
        status, message, kind, param, code = table[category]
        if category == "unavailable" and b.status == 500:
            message = "The server had an error processing your request. Sorry about that!"
        if b.html:
            return Reply.html(b.status or status, f"{b.status or status} Service Error")
        headers = {}
        if category == "rate_limited":
            headers = {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0",
                       "x-ratelimit-reset-requests": "20s", "x-ratelimit-reset-tokens": "6m0s"}
        error = {"message": b.message or message, "type": kind, "param": param, "code": code}
        return Reply.json(b.status or status, {"error": error}, headers)

    def _perplexity_error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> Reply | None:
        if category == "timeout":
            return None
        if b.html:
            status = b.status or {"auth": 401, "unavailable": 502}.get(category, 500)
            server = "openresty/1.21.4.3" if status == 401 else "cloudflare"
            title = {401: "401 Authorization Required", 502: "502 Bad Gateway"}.get(status, f"{status} Error")
            return Reply.html(status, title, server)
        table = {
            "auth": (401, ("Invalid API key provided. You can find your API key at "
                     "https://www.perplexity.ai/settings/api."), "invalid_api_key"),
            "bad_request": (400, (f"Invalid model '{route.model}'. Permitted models can be found in the "
                            "documentation at https://docs.perplexity.ai/guides/model-cards."), "invalid_model"),
            "rate_limited": (429, "Rate limit exceeded. Please retry after a short delay.",
                             "request_rate_limit_exceeded"),
            # Undocumented for Perplexity: modelled on OpenAI's insufficient_quota, which it mirrors.
            "quota_exceeded": (429, "You exceeded your current quota.", "insufficient_quota"),
            "unavailable": (500, "An internal server error has occurred.", "internal_server_error"),
        }
        status, message, kind = table[category]
        status = b.status or status
        return Reply.json(status, {"error": {"message": b.message or message, "type": kind, "code": status}})

    def _openrouter_error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> Reply | None:
        model = route.model or "openai/gpt-4o-mini"
        if b.html:
            return Reply.html(b.status or 502, f"{b.status or 502} Bad Gateway")
        if category == "unavailable" and b.status == 503:  # the documented availability-error variant
            error: dict[str, Any] = {
                "message": b.message or f"All providers for {model} failed with transient errors. Retry shortly.",
                "error_type": "provider_overloaded", "http_status": 503,
                "availability": {"code": "temporarily_unavailable", "retryable": True,
                                 "retry_after": b.retry_after, "requested_models": [model]}}
            return Reply.json(503, {"error": error})
        table: dict[str, tuple[int, str, dict[str, Any]]] = {
            "auth": (401, "User not found." if self.key(req) else "No auth credentials found", {}),
            "bad_request": (400, f"{model} is not a valid model ID", {}),
            "rate_limited": (429, "Rate limit exceeded", {"error_type": "rate_limit_exceeded"}),
            "quota_exceeded": (402, ("This request requires more credits, or fewer max_tokens. You requested up "
                               "to 4096 tokens, but can only afford 1012."), {"provider_name": None}),
            "content_filtered": (403, (f"{model} requires moderation on OpenRouter. Your input was flagged for "
                                 "\"harassment\""), {"reasons": ["harassment"], "flagged_input": "...",
                                                    "provider_name": "OpenAI", "model_slug": model}),
            "timeout": (408, "Request timed out", {"error_type": "timeout"}),
            "unavailable": (502, "Network connection lost.", {"error_type": "provider_unavailable"}),
        }
        status, message, metadata = table[category]
        status = b.status or status
        error = {"code": status, "message": b.message or message}
        if metadata:
            error["metadata"] = metadata
        headers = {}
        if category == "rate_limited":
            reset_ms = int((time.time() + 60) * 1000)  # an epoch in ms: not a retry hint
            headers = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)}
        return Reply.json(status, {"error": error, "user_id": "user_fake"}, headers)

    def midstream_error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> list[bytes]:
        """The events a 200 stream sends when it fails after it has started."""
        status = {"auth": 401, "bad_request": 400, "rate_limited": 429, "quota_exceeded": 402,
                  "content_filtered": 403, "timeout": 408, "unavailable": 502}[category]
        message = b.message or f"Upstream failure ({category})"
        if self.provider == "openrouter":
            error_type = {"rate_limited": "rate_limit_exceeded", "unavailable": "provider_unavailable",
                          "timeout": "timeout"}.get(category, category)
            chunk = {**self._base(b, route, chunk=True), "error": {
                "code": status, "message": message, "metadata": {"error_type": error_type}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
            events = [sse(chunk)]
        elif self.provider == "perplexity":
            events = [sse({"error": {"message": message, "type": category, "code": status}})]
        else:  # OpenAI: a string code (or null) and a type; 5xx-style failures are server_error
            kind, code = {"rate_limited": ("requests", "rate_limit_exceeded"),
                          "quota_exceeded": ("insufficient_quota", "insufficient_quota"),
                          "bad_request": ("invalid_request_error", None),
                          "auth": ("invalid_request_error", "invalid_api_key")}.get(category, ("server_error", None))
            events = [sse({"error": {"message": message, "type": kind, "param": None, "code": code}})]
        return events + ([sse("[DONE]")] if b.done_sentinel else [])

    def models(self) -> Reply:
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in self.MODELS[self.provider]]
        return Reply.json(200, {"object": "list", "data": data})

    def not_found(self, req: RecordedRequest) -> Reply:
        if self.provider == "perplexity":
            return Reply.json(404, {"detail": "Not Found"})
        error = {"message": f"Invalid URL ({req.method} {req.path})", "type": "invalid_request_error",
                 "param": None, "code": None}
        return Reply.json(404, {"error": error})
