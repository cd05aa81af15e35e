"""OpenAI Chat Completions (api.openai.com)."""

from __future__ import annotations

import re
from typing import Any

from .base import nearest_effort
from .chat_completions import ChatCompletionsAdapter

# Reasoning models answer `stop` with a 400 unsupported_parameter (DAC ends their answers
# itself); only they take reasoning_effort (the others answer it with a 400). GPT-5's "-chat"
# models do not reason.
_REASONING_MODEL = re.compile(r"(?:.*/)?(?:o\d|gpt-5)(?!.*-chat)")
_GPT5_POINT = re.compile(r"(?:.*/)?gpt-5\.\d")
# The levels each family takes (the nearest is sent): the o-series low to high; GPT-5 adds
# minimal; GPT-5.1 and later none (and no minimal); xhigh is left to the newest to take or refuse.
_O_SERIES_EFFORTS = ("low", "medium", "high")
_GPT5_EFFORTS = ("minimal", "low", "medium", "high")
_GPT5_POINT_EFFORTS = ("none", "low", "medium", "high", "xhigh")


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
        levels = _GPT5_POINT_EFFORTS if _GPT5_POINT.match(model) else _GPT5_EFFORTS if "gpt-5" in model else _O_SERIES_EFFORTS
        return super()._reasoning(model, nearest_effort(effort, levels))
