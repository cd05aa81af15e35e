"""The chat-completions wire format that OpenAI, OpenRouter, Perplexity and OpenAI-compatible
servers (Ollama, vLLM, LM Studio) all speak. Each provider module only states its differences.

One parser serves both answers and stream chunks: a whole answer is read like a single chunk
whose `message` stands where a chunk's `delta` would be.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from .base import Message, ProviderError, ResponseFormat, Sampling, Tools, message_text
from .http_adapter import Accumulator, HTTPAdapter, int_or_none

FINISH_REASONS_MAP: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the legacy name
}


class ChatCompletionsAdapter(HTTPAdapter):
    """POST {base}/chat/completions with a Bearer key; SSE `data:` chunks; `[DONE]` at the end."""

    path: ClassVar[str] = "/chat/completions"
    # Which field carries the output cap: OpenAI wants max_completion_tokens, most others max_tokens.
    max_tokens_field: ClassVar[str] = "max_tokens"
    # Ask for the final usage chunk in streams (OpenAI sends usage only when asked).
    include_usage: ClassVar[bool] = False
    extra_headers: ClassVar[dict[str, str]] = {}
    # Whether the provider takes `stop` (Perplexity does not: DAC then ends the answer itself).
    takes_stop: ClassVar[bool] = True
    # The Sampling fields the provider takes as they are (by their OpenAI name); reasoning_effort
    # goes through `_reasoning`.
    sampling_fields: ClassVar[frozenset[str]] = frozenset({"top_p", "seed", "presence_penalty", "frequency_penalty", "logit_bias"})

    def _url(self, model: str, stream: bool) -> str:
        return self.base_url + self.path

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.extra_headers}
        if self._api_key:  # local servers (Ollama) need none
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, messages: Sequence[Message], model: str, max_tokens: int | None,
              temperature: float | None, stream: bool, *, stop: Sequence[str] = (),
              response_format: ResponseFormat | None = None, tools: Tools | None = None,
              sampling: Sampling | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if sampling is not None:
            body.update({name: value for name, value in sampling.given().items() if name in self.sampling_fields})
            if sampling.reasoning_effort is not None:
                body.update(self._reasoning(model, sampling.reasoning_effort))
        if stop and self._takes_stop(model):
            body["stop"] = list(stop)
        if response_format is not None:
            body["response_format"] = self._response_format(response_format)
        if tools is not None:
            body["tools"] = list(tools.functions)
            body["tool_choice"] = tools.choice
            if tools.parallel is not None:
                body["parallel_tool_calls"] = tools.parallel
        if stream:
            body["stream"] = True
            if self.include_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def _takes_stop(self, model: str) -> bool:
        return self.takes_stop

    def _reasoning(self, model: str, effort: str) -> dict[str, Any]:
        """The request fields for a reasoning effort (one of REASONING_EFFORTS). OpenAI's own
        field: vLLM, Ollama and llama.cpp take it for their reasoning models."""
        return {"reasoning_effort": effort}

    def _response_format(self, wanted: ResponseFormat) -> dict[str, Any]:
        if wanted.type == "json_object":
            return {"type": "json_object"}
        spec: dict[str, Any] = {"name": wanted.name}
        for name in ("description", "schema", "strict"):
            if getattr(wanted, name) is not None:
                spec[name] = getattr(wanted, name)
        return {"type": "json_schema", "json_schema": spec}

    def _absorb(self, acc: Accumulator, payload: dict[str, Any]) -> str:
        acc.model = payload.get("model") or acc.model
        usage = payload.get("usage")
        if isinstance(usage, dict) and usage:
            # Perplexity repeats running totals on every chunk, so the last report is the total.
            acc.input_tokens = int_or_none(usage.get("prompt_tokens"))
            acc.output_tokens = int_or_none(usage.get("completion_tokens"))
            acc.total_tokens = int_or_none(usage.get("total_tokens"))
            acc.cost_usd = self._cost(usage)
        self._take_citations(acc, payload)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""  # e.g. the usage-only chunk, `choices: []`
        choice = choices[0]
        delta = choice.get("delta")
        message = delta or choice.get("message") or {}
        for position, call in enumerate(message.get("tool_calls") or ()):
            if isinstance(call, dict):
                # A stream keys each piece by `index`; a whole answer lists its calls in order.
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                index = (call["index"] if isinstance(call.get("index"), int) else position) if delta else None
                arguments = function.get("arguments")
                if isinstance(arguments, (dict, list)):  # llama.cpp and TGI have sent the object itself
                    arguments = json.dumps(arguments, ensure_ascii=False)
                acc.add_tool_call(index, call.get("id"), function.get("name"), arguments)
        for note in message.get("annotations") or []:
            # Web-search answers (OpenAI search models, OpenRouter's web plugin) cite this way.
            if isinstance(note, dict) and note.get("type") == "url_citation":
                acc.add_citation((note.get("url_citation") or {}).get("url"))
        finish = choice.get("finish_reason")
        if finish:
            acc.finish = FINISH_REASONS_MAP.get(finish, "other")
        return acc.add_text(message_text(message.get("content")))

    def _take_citations(self, acc: Accumulator, payload: dict[str, Any]) -> None:
        """Provider-level citation fields (Perplexity); OpenAI puts them in annotations."""

    def _cost(self, usage: dict[str, Any]) -> float | None:
        return None

    def _embedded_error(self, payload: dict[str, Any]) -> ProviderError | None:
        # Once a stream has started the status stays 200, so failures arrive as `{"error": {...}}`.
        return self._embedded_error_object(payload)

    def _category(self, status: int | None, error: dict[str, Any], body: Any) -> str | None:
        # A 429 means either "slow down" or "out of money"; only the code tells them apart.
        if "insufficient_quota" in (error.get("code"), error.get("type")):
            return "quota_exceeded"
        return None

    def _model_ids(self, payload: Any) -> list[str]:
        data = payload.get("data") if isinstance(payload, dict) else payload
        return [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
