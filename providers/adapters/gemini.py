"""Google Gemini API, v1beta generateContent / streamGenerateContent (generativelanguage.googleapis.com)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .base import Message, ProviderError, ResponseFormat, Sampling, Tools, message_text, nearest_effort
from .http_adapter import Accumulator, HTTPAdapter, int_or_none

FINISH_REASONS_MAP: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "RECITATION": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# The Sampling fields under their generationConfig names.
_GENERATION_CONFIG = {"top_p": "topP", "seed": "seed", "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}
# reasoning_effort as Gemini's thinkingConfig: Gemini 3 takes a level (Pro only low and high),
# 2.5 a budget of tokens (Google's own OpenAI-compatible layer: 1K, 8K, 24K; 0 turns it off,
# which 2.5 Pro cannot: 128 is its least). Earlier models do not think and refuse the field.
_GEMINI_VERSION = re.compile(r"(?:models/)?gemini-(\d+)(?:\.(\d+))?")
_THINKING_LEVELS = ("minimal", "low", "medium", "high")
_THINKING_LEVELS_PRO = ("low", "high")
_THINKING_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
_THINKING_BUDGET_PRO = {**_THINKING_BUDGET, "none": 128, "xhigh": 32768}
_NOT_THINKING = ("-image", "-tts", "embedding", "-live", "-audio")
# Finish reasons of a function call that went wrong (nothing usable came with them).
_FAILED_CALL_REASONS = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}
# What Gemini 3 accepts in place of a call's thought signature that DAC does not have (a call
# made by another provider, or one whose signature has expired from DAC's store).
SIGNATURE_PLACEHOLDER = "skip_thought_signature_validator"
# ErrorInfo reasons that mean the key itself is wrong (Gemini answers those with a 400).
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GeminiAdapter(HTTPAdapter):
    name = "gemini"
    default_model = "gemini-2.5-flash"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    takes_logit_bias = False  # generationConfig has no per-token bias

    def _url(self, model: str, stream: bool) -> str:
        model_id = quote(model.removeprefix("models/"), safe="-._~")
        if stream:
            # Without alt=sse the same method streams one big JSON array instead of events.
            return f"{self.base_url}/models/{model_id}:streamGenerateContent?alt=sse"
        return f"{self.base_url}/models/{model_id}:generateContent"

    def _headers(self) -> dict[str, str]:
        # The header, not ?key=: query strings end up in access logs and exception messages.
        return {"Content-Type": "application/json", "x-goog-api-key": self._api_key}

    def _body(self, messages: Sequence[Message], model: str, max_tokens: int | None,
              temperature: float | None, stream: bool, *, stop: Sequence[str] = (),
              response_format: ResponseFormat | None = None, tools: Tools | None = None,
              sampling: Sampling | None = None) -> dict[str, Any]:
        system: list[dict[str, str]] = []
        contents: list[dict[str, Any]] = []
        called: dict[str, str] = {}  # tool call id → function name (a function's answer names it)
        for message in messages:
            role, text = message.get("role"), message_text(message.get("content"))
            if role in ("system", "developer"):
                if text:
                    system.append({"text": text})
                continue
            parts: list[dict[str, Any]] = [{"text": text}] if text else []  # Gemini rejects empty parts
            for number, call in enumerate(message.get("tool_calls") or ()):
                called[call["id"]] = call["function"]["name"]
                part = {"functionCall": {"name": call["function"]["name"], "args": _json_object(call["function"]["arguments"])}}
                # Gemini 3 wants each call's signature back (parallel calls: the first carries it).
                signature = call.get("thought_signature") or (SIGNATURE_PLACEHOLDER if number == 0 and "gemini-3" in model else None)
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            if role == "tool":
                name = called.get(message.get("tool_call_id"), "")
                parts = [{"functionResponse": {"name": name, "response": _json_object(text, key="content")}}]
            if not parts:
                continue
            gemini_role = "model" if role == "assistant" else "user"
            if contents and contents[-1]["role"] == gemini_role:
                contents[-1]["parts"].extend(parts)  # turns must alternate: merge
            else:
                contents.append({"role": gemini_role, "parts": parts})
        body: dict[str, Any] = {"contents": contents}
        config: dict[str, Any] = {}
        if max_tokens is not None:
            config["maxOutputTokens"] = max_tokens
        if temperature is not None:
            config["temperature"] = temperature
        if sampling is not None:
            config.update({_GENERATION_CONFIG[name]: value for name, value in sampling.given().items() if name in _GENERATION_CONFIG})
            thinking = _thinking_config(model, sampling.reasoning_effort) if sampling.reasoning_effort else None
            if thinking is not None:
                config["thinkingConfig"] = thinking
        if stop:
            config["stopSequences"] = list(stop)
        if response_format is not None and tools is None:
            config["responseMimeType"] = "application/json"
            if response_format.schema is not None:
                config["responseJsonSchema"] = response_format.schema
        elif response_format is not None:
            # Gemini 2.5 refuses JSON output beside function calling (a 400): the answer's shape
            # is asked for in words instead.
            shape = f" matching this JSON Schema: {json.dumps(response_format.schema)}" if response_format.schema else ""
            system.append({"text": f"When you answer rather than call a function, answer with one JSON object{shape}, nothing else."})
        if system:
            body["systemInstruction"] = {"parts": system}
        if config:
            body["generationConfig"] = config
        if tools is not None:
            body["tools"] = [{"functionDeclarations": [_declaration(tool["function"]) for tool in tools.functions]}]
            body["toolConfig"] = {"functionCallingConfig": _calling_config(tools.choice)}
        return body

    def _absorb(self, acc: Accumulator, payload: dict[str, Any]) -> str:
        acc.model = payload.get("modelVersion") or acc.model
        usage = payload.get("usageMetadata")
        if isinstance(usage, dict) and usage:
            # Cumulative on every chunk: the last report wins. Thoughts are billed as output,
            # which makes input + output add up to totalTokenCount.
            acc.input_tokens = int_or_none(usage.get("promptTokenCount"))
            outputs = [usage[k] for k in ("candidatesTokenCount", "thoughtsTokenCount")
                       if int_or_none(usage.get(k)) is not None]
            acc.output_tokens = sum(outputs) if outputs else None
            acc.total_tokens = int_or_none(usage.get("totalTokenCount"))
        candidates = payload.get("candidates")
        if not candidates:
            reason = (payload.get("promptFeedback") or {}).get("blockReason")
            if reason:
                raise self._error("content_filtered", 200, f"the prompt was blocked ({reason})")
            return ""
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        parts = (candidate.get("content") or {}).get("parts") or []
        text = ""
        for part in parts:
            if not isinstance(part, dict):
                continue
            call = part.get("functionCall")
            if isinstance(call, dict):  # a whole call, with no id (the accumulator gives it one)
                acc.add_tool_call(None, None, call.get("name"), json.dumps(call.get("args") or {}, ensure_ascii=False),
                                  part.get("thoughtSignature"))
            if not part.get("thought"):  # reasoning summaries are not the answer
                text += part.get("text") or ""
        grounding = candidate.get("groundingMetadata") or {}
        for chunk in grounding.get("groundingChunks") or []:
            acc.add_citation(((chunk or {}).get("web") or {}).get("uri"))
        finish = candidate.get("finishReason")
        if finish in _FAILED_CALL_REASONS and not (text or acc.text) and not acc.tool_calls:
            # A call the model botched: no answer at all, which a retry or another provider may give.
            raise self._error("unavailable", 200, f"the model produced no valid function call ({finish})")
        if finish:
            mapped = FINISH_REASONS_MAP.get(finish, "other")
            acc.finish = "tool_calls" if mapped == "stop" and acc.tool_calls else mapped
        return acc.add_text(text)

    def _embedded_error(self, payload: dict[str, Any]) -> ProviderError | None:
        return self._embedded_error_object(payload)

    def _category(self, status: int | None, error: dict[str, Any], body: Any) -> str | None:
        details = [d for d in error.get("details") or [] if isinstance(d, dict)]
        if any(d.get("reason") in _KEY_REASONS for d in details) or error.get("status") == "UNAUTHENTICATED":
            return "auth"
        if status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
            # Daily quotas stay exhausted until tomorrow; per-minute ones pass in seconds.
            quota_ids = [str(v.get("quotaId", "")) for d in details for v in d.get("violations") or []
                         if isinstance(v, dict)]
            return "quota_exceeded" if any("PerDay" in q for q in quota_ids) else "rate_limited"
        if error.get("status") == "DEADLINE_EXCEEDED":
            return "timeout"
        return None

    def _body_retry_after(self, error: dict[str, Any]) -> float | None:
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                delay = detail.get("retryDelay")
                match = _DURATION_RE.match(delay) if isinstance(delay, str) else None
                if match:
                    return float(match.group(1))
        return None

    def _models_url(self) -> str:
        return f"{self.base_url}/models?pageSize=1000"

    def _model_ids(self, payload: Any) -> list[str]:
        models = payload.get("models") if isinstance(payload, dict) else None
        return [m["name"].removeprefix("models/") for m in models or []
                if isinstance(m, dict) and isinstance(m.get("name"), str)]


def _json_object(text: str, key: str = "value") -> dict[str, Any]:
    """JSON text as the object Gemini wants (function arguments, a function's answer); text
    that is not a JSON object goes under `key`."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {key: value}


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    declaration = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters") is not None:
        declaration["parametersJsonSchema"] = function["parameters"]  # JSON Schema, as OpenAI's are
    return declaration


def _calling_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    return {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}


def _thinking_config(model: str, effort: str) -> dict[str, Any] | None:
    """Gemini's thinkingConfig for a reasoning effort, or None for a model that does not think
    (nor image, speech, embedding or live models). A "-latest" alias (gemini-flash-latest) gets a
    budget, which every thinking model takes; other names without a version get nothing."""
    if any(kind in model for kind in _NOT_THINKING):
        return None
    pro = "-pro" in model
    budget = {"thinkingBudget": (_THINKING_BUDGET_PRO if pro else _THINKING_BUDGET)[effort]}
    version = _GEMINI_VERSION.match(model)
    if version is None:
        return budget if model.endswith("-latest") else None
    major, minor = int(version[1]), int(version[2] or 0)
    if major >= 3:
        return {"thinkingLevel": nearest_effort(effort, _THINKING_LEVELS_PRO if pro else _THINKING_LEVELS)}
    return budget if (major, minor) >= (2, 5) else None
