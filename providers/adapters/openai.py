"""OpenAI Chat Completions (api.openai.com)."""

from __future__ import annotations

import re
from typing import Any

from .chat_completions import ChatCompletionsAdapter

# Reasoning models answer `stop` with a 400 unsupported_parameter (DAC ends their answers
# itself); only they take reasoning_effort (the others answer it with a 400). GPT-5's "-chat"
# models do not reason.
_REASONING_MODEL = re.compile(r"(?:.*/)?(?:o\d|gpt-5)(?!.*-chat)")
_GPT5_POINT = re.compile(r"(?:.*/)?gpt-5\.\d")
# The levels each family has, as the nearest it takes: the o-series low to high; GPT-5 adds
# minimal; GPT-5.1 and later none (and no minimal); xhigh is left to the newest to take or refuse.
_O_SERIES_EFFORT = {"none": "low", "minimal": "low", "xhigh": "high"}
_GPT5_EFFORT = {"none": "minimal", "xhigh": "high"}
_GPT5_POINT_EFFORT = {"minimal": "low"}


class OpenAIAdapter(ChatCompletionsAdapter):
    name = "openai"
    default_model = "gpt-4o-mini"
    default_base_url = "https://api.openai.com/v1"
    # `max_tokens` is deprecated and reasoning models reject it with a 400.
    max_tokens_field = "max_completion_tokens"
    # Without it a stream reports no usage at all, and quotas need the real token counts.
    include_usage = True

    def _takes_stop(self, model: str) -> bool:
        return not _REASONING_MODEL.match(model)

    def _reasoning(self, model: str, effort: str) -> dict[str, Any]:
        # A model that does not reason has no effort to set: it answers as it always does.
        if not _REASONING_MODEL.match(model):
            return {}
        nearest = (_GPT5_POINT_EFFORT if _GPT5_POINT.match(model) else _GPT5_EFFORT if "gpt-5" in model else _O_SERIES_EFFORT)
        return super()._reasoning(model, nearest.get(effort, effort))
