"""Perplexity Sonar chat completions (api.perplexity.ai, no /v1 in the base URL)."""

from __future__ import annotations

from typing import Any

from .base import ResponseFormat, nearest_effort
from .chat_completions import ChatCompletionsAdapter
from .http_adapter import Accumulator

# Perplexity has no models endpoint; these are the documented Sonar models.
SONAR_MODELS = ["sonar", "sonar-pro", "sonar-reasoning-pro", "sonar-deep-research"]


class PerplexityAdapter(ChatCompletionsAdapter):
    name = "perplexity"
    default_model = "sonar"
    default_base_url = "https://api.perplexity.ai"
    max_tokens_field = "max_tokens"
    takes_stop = False  # not in Sonar's parameters: DAC ends the answer at the sequence itself
    takes_tools = False  # Sonar calls no client functions: routing passes it over for requests with tools
    sampling_fields = frozenset({"top_p", "presence_penalty", "frequency_penalty"})  # no seed
    takes_logit_bias = False  # not in Sonar's parameters

    def _response_format(self, wanted: ResponseFormat) -> dict[str, Any]:
        # Sonar's structured output is JSON Schema only (no json_object), in this shape.
        return {"type": "json_schema", "json_schema": {"schema": wanted.schema or {"type": "object"}}}

    def _reasoning(self, model: str, effort: str) -> dict[str, Any]:
        # Only sonar-deep-research takes an effort, and only low, medium or high.
        if "deep-research" not in model:
            return {}
        return {"reasoning_effort": nearest_effort(effort, ("low", "medium", "high"))}

    def _take_citations(self, acc: Accumulator, payload: dict[str, Any]) -> None:
        # Every chunk repeats the full list, so the latest one replaces what came before.
        # Some answers carry only `citations`, others only `search_results`: use whichever is there.
        if isinstance(payload.get("citations"), list):
            acc.citations = [url for url in payload["citations"] if isinstance(url, str)]
        elif isinstance(payload.get("search_results"), list):
            acc.citations = [r["url"] for r in payload["search_results"]
                             if isinstance(r, dict) and isinstance(r.get("url"), str)]

    def _is_terminal(self, payload: dict[str, Any]) -> bool:
        # `[DONE]` has come and gone over time; this terminal chunk is always sent.
        return payload.get("object") == "chat.completion.done"

    def _cost(self, usage: dict[str, Any]) -> float | None:
        cost = usage.get("cost")
        total = cost.get("total_cost") if isinstance(cost, dict) else None
        return float(total) if isinstance(total, (int, float)) else None

    async def list_models(self, timeout: float = 10.0) -> list[str]:
        return list(SONAR_MODELS)

    async def check_key(self, timeout: float = 10.0) -> None:
        # No models endpoint to ask, so the cheapest real proof is a one-token answer.
        await self.complete(messages=[{"role": "user", "content": "ping"}], model="sonar",
                            max_tokens=1, timeout=timeout)
