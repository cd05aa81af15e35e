"""OpenRouter (openrouter.ai/api/v1): chat completions routed to many upstream providers."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import ProviderError
from .chat_completions import ChatCompletionsAdapter
from .http_adapter import int_or_none


class OpenRouterAdapter(ChatCompletionsAdapter):
    name = "openrouter"
    default_model = "openrouter/auto"
    default_base_url = "https://openrouter.ai/api/v1"
    max_tokens_field = "max_tokens"
    # Attribution: lets the org see DAC's traffic on its OpenRouter dashboard.
    extra_headers: ClassVar[dict[str, str]] = {"X-OpenRouter-Title": "DAC", "X-Title": "DAC"}

    def _reasoning(self, model: str, effort: str) -> dict[str, Any]:
        # OpenRouter's one setting for every upstream's reasoning (it takes all six levels).
        return {"reasoning": {"effort": effort}}

    def _embedded_error(self, payload: dict[str, Any]) -> ProviderError | None:
        # Key on the top-level `error`: a recorded mid-stream error had `finish_reason: null`.
        top = self._embedded_error_object(payload)
        if top is not None:
            return top
        # A non-streaming answer can be a 200 whose choice failed upstream.
        for choice in payload.get("choices") or []:
            error = choice.get("error") if isinstance(choice, dict) else None
            if error:
                error = error if isinstance(error, dict) else {"message": str(error)}
                return self._error_from_object(error, int_or_none(error.get("code")), payload)
        return None

    def _category(self, status: int | None, error: dict[str, Any], body: Any) -> str | None:
        metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
        if status == 403 and ("reasons" in metadata or "flagged_input" in metadata):
            return "content_filtered"  # a moderation block, not a key problem
        return super()._category(status, error, body)

    def _body_retry_after(self, error: dict[str, Any]) -> float | None:
        # The availability-error variant mirrors Retry-After in its body.
        availability = error.get("availability")
        value = availability.get("retry_after") if isinstance(availability, dict) else None
        return float(value) if isinstance(value, (int, float)) and value >= 0 else None

    def _error_message(self, error: dict[str, Any]) -> str:
        message = super()._error_message(error)
        metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
        # "Provider returned error" says nothing; the upstream's own words are in metadata.raw.
        raw, upstream = metadata.get("raw"), metadata.get("provider_name")
        if isinstance(raw, str) and raw:
            message += f" ({upstream or 'upstream'}: {' '.join(raw.split())[:300]})"
        return message

    def _cost(self, usage: dict[str, Any]) -> float | None:
        cost = usage.get("cost")
        return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
