"""The Gemini API v1beta wire format (generateContent / streamGenerateContent), written from
docs/provider-wire-formats.md section 2: CRLF-separated SSE with `alt=sse` (a JSON array
without it), no [DONE], cumulative usageMetadata, safety blocks as HTTP 200."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, ClassVar
from urllib.parse import unquote

from .behaviour import Behaviour, RecordedRequest, Reply, StreamPlan
from .wire_chat import Route, sse

_ROUTE_RE = re.compile(r"^/v1(?:beta)?/models/([^:/]+(?:/[^:/]+)?):(generateContent|streamGenerateContent)$")
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_ids = itertools.count(1)
CRLF2 = b"\r\n\r\n"


class GeminiWire:
    provider = "gemini"
    prefix = "/v1beta"
    filtered_is_200 = True  # a blocked prompt is promptFeedback.blockReason in a 200
    MODELS: ClassVar[list[str]] = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"]

    def __init__(self) -> None:
        self.signatures: set[str] = set()  # the thought signatures this fake gave out

    def route(self, req: RecordedRequest) -> Route:
        if req.method == "GET" and req.path in ("/v1beta/models", "/v1/models"):
            return Route("models")
        match = _ROUTE_RE.match(unquote(req.path))
        if req.method != "POST" or not match:
            return Route("unknown")
        model = match.group(1).removeprefix("models/")
        stream = match.group(2) == "streamGenerateContent"
        return Route("chat", stream=stream, model=model, sse=req.query.get("alt") == "sse")

    def key(self, req: RecordedRequest) -> str | None:
        return req.headers.get("x-goog-api-key") or req.query.get("key")

    def stop_sequences(self, req: RecordedRequest) -> list[str]:
        config = (req.json or {}).get("generationConfig") if isinstance(req.json, dict) else None
        return list((config or {}).get("stopSequences") or [])

    def refusal(self, req: RecordedRequest) -> str | None:
        """Why Gemini would refuse the request's generationConfig with a 400 (None: it would not)."""
        config = (req.json or {}).get("generationConfig") if isinstance(req.json, dict) else None
        config = config if isinstance(config, dict) else {}
        if len(config.get("stopSequences") or []) > 5:
            return "Invalid value at 'generation_config.stop_sequences': at most 5 stop sequences are allowed."
        if "responseJsonSchema" in config and config.get("responseMimeType") != "application/json":
            return ("* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be "
                    "application/json when response_json_schema is set.")
        body = req.json if isinstance(req.json, dict) else {}
        if body.get("tools") and config.get("responseMimeType") == "application/json":
            return "Function calling with a response mime type: 'application/json' is unsupported"
        model = self.route(req).model
        for number, content in enumerate(body.get("contents") or []):
            calls = [part for part in content.get("parts") or [] if "functionCall" in part]
            signature = calls[0].get("thoughtSignature") if calls else None
            # Gemini 3 wants the first call of each turn back with the signature it came with.
            if calls and model.startswith("gemini-3") and signature is None:
                return f"Function call `{calls[0]['functionCall'].get('name')}` in the {number}. content block is missing a `thought_signature`."
            if signature is not None and signature not in self.signatures and signature != "skip_thought_signature_validator":
                return "Corrupted thought signature."
        return None

    # ---- success ----------------------------------------------------------------------------

    def _usage(self, b: Behaviour, req: RecordedRequest, outputs: int | None) -> dict[str, Any]:
        inputs, total_out = b.usage(req, self.stop_sequences(req))
        usage: dict[str, Any] = {"promptTokenCount": inputs,
                                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": inputs}]}
        out = total_out if outputs is None else outputs
        if out:  # early chunks may lack candidatesTokenCount, as real ones do
            usage["candidatesTokenCount"] = out
        if b.thoughts_tokens:
            usage["thoughtsTokenCount"] = b.thoughts_tokens
        usage["totalTokenCount"] = inputs + out + b.thoughts_tokens
        return usage

    def _response(self, b: Behaviour, req: RecordedRequest, route: Route, text: str,
                  finish: str | None, outputs: int | None, response_id: str) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": text}] if text else []
        if finish and b.calls():
            parts = [{"functionCall": {"name": name, "args": json.loads(arguments)}} for name, arguments in b.calls()]
            signature = f"c2ln{next(_ids):06d}"  # opaque; on the first call of the turn, as Gemini 3 sends it
            self.signatures.add(signature)
            parts[0]["thoughtSignature"] = signature
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
            if finish == "SAFETY":
                candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_HATE_SPEECH",
                                               "probability": "MEDIUM", "blocked": True}]
                if not text:
                    candidate["content"] = {}  # a blocked answer has no parts at all
        return {"candidates": [candidate], "usageMetadata": self._usage(b, req, outputs),
                "modelVersion": b.model or route.model, "responseId": response_id}

    def _blocked(self, b: Behaviour, req: RecordedRequest, route: Route) -> dict[str, Any]:
        inputs, _ = b.usage(req, self.stop_sequences(req))
        return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": inputs, "totalTokenCount": inputs},
                "modelVersion": b.model or route.model, "responseId": f"fake-{next(_ids)}"}

    def success(self, b: Behaviour, req: RecordedRequest, route: Route, blocked: bool = False) -> Reply:
        if blocked:
            return Reply.json(200, self._blocked(b, req, route))
        body = self._response(b, req, route, b.answer(req, self.stop_sequences(req)), _FINISH[b.finish_reason], None, f"fake-{next(_ids)}")
        return Reply.json(200, body)

    def stream(self, b: Behaviour, req: RecordedRequest, route: Route, blocked: bool = False) -> StreamPlan:
        if blocked:
            return StreamPlan([("tail", sse(self._blocked(b, req, route), CRLF2))], array=not route.sse)
        pieces = [""] if b.calls() else b.pieces(req, self.stop_sequences(req))  # calls come in one chunk
        response_id = f"fake-{next(_ids)}"
        _, total_out = b.usage(req, self.stop_sequences(req))
        events: list[tuple[str, bytes]] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            # Report output tokens proportionally so the last chunk carries the true total.
            outputs = total_out if last else (total_out * (i + 1)) // len(pieces)
            payload = self._response(b, req, route, piece, _FINISH[b.finish_reason] if last else None,
                                     outputs, response_id)
            events.append(("text", sse(payload, CRLF2)))
        return StreamPlan(events, array=not route.sse)

    # ---- failures ---------------------------------------------------------------------------

    def _envelope(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return {"error": error}

    def error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> Reply | None:
        if b.html:
            return Reply.html(b.status or 502, f"{b.status or 502} Bad Gateway", "Google Frontend")
        details: list[dict[str, Any]] = []
        if category == "auth":
            if self.key(req):  # a wrong key is a 400, not a 401
                status, message = 400, "API key not valid. Please pass a valid API key."
                details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                            "metadata": {"service": "generativelanguage.googleapis.com"}}]
            else:
                status, message = 403, ("Method doesn't allow unregistered callers (callers without established "
                                         "identity). Please use API Key or other form of API consumer identity "
                                         "to call this API.")
        elif category == "bad_request":
            status = b.status or 400
            message = (f"models/{route.model} is not found for API version v1beta, or is not supported for "
                       "generateContent." if status == 404 else "Request contains an invalid argument.")
        elif category in ("rate_limited", "quota_exceeded"):
            status = 429
            quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if category == "quota_exceeded"
                        else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
            message = "You exceeded your current quota, please check your plan and billing details."
            details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                                        "quotaId": quota_id, "quotaDimensions": {"model": route.model}}]},
                       {"@type": "type.googleapis.com/google.rpc.Help",
                        "links": [{"description": "Learn more about Gemini API quotas",
                                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
            if b.retry_after is not None:  # Gemini's only retry hint lives in the body
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                "retryDelay": f"{b.retry_after:g}s"})
        elif category == "timeout":
            status, message = 504, "Deadline expired before operation could complete."
        else:  # unavailable
            status = b.status or 503
            message = ("An internal error has occurred. Please retry or report in "
                       "https://developers.generativeai.google/guide/troubleshooting" if status == 500
                       else "The model is overloaded. Please try again later.")
        status = b.status or status
        return Reply.json(status, self._envelope(status, b.message or message, details))

    def midstream_error(self, category: str, b: Behaviour, req: RecordedRequest, route: Route) -> list[bytes]:
        status = {"auth": 403, "bad_request": 400, "rate_limited": 429, "quota_exceeded": 429,
                  "content_filtered": 400, "timeout": 504, "unavailable": 500}[category]
        return [sse(self._envelope(status, b.message or f"Upstream failure ({category})"), CRLF2)]

    def models(self) -> Reply:
        models = [{"name": f"models/{m}", "displayName": m, "inputTokenLimit": 1048576,
                   "supportedGenerationMethods": ["generateContent", "countTokens"]} for m in self.MODELS]
        return Reply.json(200, {"models": models})

    def not_found(self, req: RecordedRequest) -> Reply:
        return Reply.json(404, self._envelope(404, f"Method not found: {req.method} {req.path}"))
