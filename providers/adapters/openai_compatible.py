"""Any server that speaks OpenAI's chat completions at a custom base URL (Ollama, vLLM,
LM Studio, llama.cpp, LiteLLM...). The base URL is required; the key is optional."""

from __future__ import annotations

from .chat_completions import ChatCompletionsAdapter


class OpenAICompatibleAdapter(ChatCompletionsAdapter):
    name = "openai_compatible"
    default_model = None  # whatever the server hosts; there is no sensible guess
    default_base_url = None
    # Local servers widely accept `max_tokens`; `max_completion_tokens` is newer and patchier.
    max_tokens_field = "max_tokens"
    # vLLM, Ollama and llama.cpp report stream usage only when asked.
    include_usage = True
