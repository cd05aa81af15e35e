"""The demo provider: offline, deterministic, clearly labelled.

It powers the /demo page and lets DAC run with no provider keys at all. The same conversation
always gets the same answer (no randomness, no clock), streamed word by word with a small delay
so the UI behaves as it would with a real model. It never touches the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Sequence

from .base import (
    BaseAdapter, CompletionResult, Message, ResponseFormat, Sampling, StreamEvent, ToolCall, ToolCallPart, Tools, message_text,
    stop_position,
)

LABEL = "(Demo answer — not from a real model.)"
_CODE_RE = re.compile(
    r"\b(code|coding|function|script|snippet|implement\w*|program\w*|python|javascript|js|"
    r"typescript|sql|query|regex|class|algorithm|bash|shell)\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]{3,}")
_CHUNK_RE = re.compile(r"\S+\s*|\s+")
_STOPWORD_TEXT = (
    "about above after again also because been before being below between both could does doing "
    "down during each from further have having here hers herself himself into itself just more "
    "most myself once only other ought ourselves over same should some such than that their theirs "
    "them themselves then there these they this those through under until very were what when "
    "where which while whom with would your yours yourself yourselves please tell explain write "
    "show give make want need like know"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_OPENINGS = (
    "Here is how a real model might start on that.",
    "That is a good question to try DAC with.",
    "A real provider would answer this in full; here is the shape of such an answer.",
    "Let me sketch the kind of answer you would get from a configured provider.",
)
_BULLETS = (
    ("a direct answer to your question", "the reasoning behind it", "caveats worth checking"),
    ("a short summary first", "details and examples", "sources, where the provider cites them"),
    ("the key facts", "a worked example", "suggested next steps"),
)
# Placeholders (not str.format: the samples are full of braces): @Q@ is the question as a
# Python literal, @QJS@ as a JSON string, @QSQL@ as a SQL LIKE pattern.
_CODE = {
    "python": (
        "def summarize(question: str) -> str:\n"
        '    """A stand-in: the demo provider does not run a real model."""\n'
        "    words = question.split()\n"
        '    return f"{len(words)} words, starting with: {\' \'.join(words[:3])}"\n\n\n'
        "print(summarize(@Q@))"
    ),
    "javascript": (
        "function summarize(question) {\n"
        "  // A stand-in: the demo provider does not run a real model.\n"
        "  const words = question.split(/\\s+/);\n"
        "  return `${words.length} words, starting with: ${words.slice(0, 3).join(' ')}`;\n"
        "}\n\n"
        "console.log(summarize(@QJS@));"
    ),
    "sql": (
        "-- A stand-in: the demo provider does not run a real model.\n"
        "SELECT id, created_at, content\n"
        "FROM messages\n"
        "WHERE content ILIKE @QSQL@\n"
        "ORDER BY created_at DESC\n"
        "LIMIT 10;"
    ),
}


def estimate_tokens(text: str) -> int:
    """About four characters per token, the usual rule of thumb for English."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _language(question: str) -> str:
    lowered = question.lower()
    if re.search(r"\b(sql|query|select|table|postgres)\b", lowered):
        return "sql"
    if re.search(r"\b(javascript|js|typescript|node|react)\b", lowered):
        return "javascript"
    return "python"


def compose_answer(messages: Sequence[Message]) -> str:
    """The demo answer for a conversation: a pure function of the messages."""
    turns = [(str(m.get("role", "")), message_text(m.get("content"))) for m in messages]
    question = next((text for role, text in reversed(turns) if role == "user"), "")
    question = " ".join(question.split())
    seed = int.from_bytes(hashlib.sha256(json.dumps(turns, ensure_ascii=False).encode()).digest()[:8], "big")
    shown = question if len(question) <= 200 else question[:197].rstrip() + "..."
    lines = [
        (f"{LABEL} This reply comes from DAC's built-in demo provider: it runs offline and gives "
        "the same answer to the same conversation."),
        "",
        f"You asked: “{shown or '(an empty message)'}”",
        "",
        _OPENINGS[seed % len(_OPENINGS)],
    ]
    if turns and turns[-1][0] == "tool":  # a function's answer to the demo's call
        result = " ".join(turns[-1][1].split())
        lines[3:3] = [f"Your function answered: “{result if len(result) <= 200 else result[:197].rstrip() + '...'}”", ""]
    keywords: list[str] = []
    for word in _WORD_RE.findall(question):
        if word.lower() not in _STOPWORDS and word.lower() not in (k.lower() for k in keywords):
            keywords.append(word)
    if keywords:
        picked = sorted(keywords, key=lambda w: (-len(w), w.lower()))[:3]
        lines.append("Key terms I noticed: " + ", ".join(f"**{w}**" for w in picked) + ".")
    earlier = sum(1 for role, _ in turns if role != "system") - 1  # DAC's own system prompt is no message of the thread
    if earlier > 0:
        lines.append(f"I can see {earlier} earlier message{'s' if earlier != 1 else ''} in this thread.")
    lines += ["", "**What a real provider would add**", ""]
    lines += [f"- {item}" for item in _BULLETS[(seed >> 8) % len(_BULLETS)]]
    if _CODE_RE.search(question):
        language = _language(question)
        sample = question[:60] or "hello"
        code = (_CODE[language].replace("@QJS@", json.dumps(sample)).replace("@Q@", repr(sample))
                .replace("@QSQL@", "'%" + sample[:30].replace("'", "''") + "%'"))
        lines += ["", f"Here is a small {language} example:", "", f"```{language}", code, "```"]
    lines += ["", ("To get real answers, an admin can add a provider key (OpenAI, Gemini, Perplexity, "
              "OpenRouter or any OpenAI-compatible server) in the provider settings.")]
    return "\n".join(lines)


def demo_json(schema: object, question: str) -> object:
    """A value of the shape `schema` asks for (the JSON Schema keywords a structured-output
    request uses: type, properties, required, items, enum, const, anyOf), filled with
    placeholders; without a schema, an object saying what a real provider would do."""
    if not isinstance(schema, dict):
        return {"demo": True, "question": question,
                "note": "The demo provider answers every JSON request like this; a real provider would answer the question."}
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf"):
        if isinstance(schema.get(choice), list) and schema[choice]:
            return demo_json(schema[choice][0], question)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or isinstance(schema.get("properties"), dict):
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {name: demo_json(sub, question) for name, sub in properties.items()}
    if kind == "array":
        return [demo_json(schema.get("items"), question)] if isinstance(schema.get("items"), dict) else []
    return {"string": "demo", "integer": 0, "number": 0, "boolean": False, "null": None}.get(kind, "demo")


def _last_question(messages: Sequence[Message]) -> str:
    return next((message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")


class DemoAdapter(BaseAdapter):
    """`chunk_delay` is the pause before each streamed word, in seconds (0 streams at once)."""

    name = "demo"
    default_model = "demo-1"
    default_base_url = "demo://offline"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 chunk_delay: float = 0.015) -> None:
        super().__init__(api_key=api_key, base_url=base_url)
        self.chunk_delay = max(float(chunk_delay), 0.0)

    def _answer(self, messages: Sequence[Message], max_tokens: int | None, stop: Sequence[str] = (),
                response_format: ResponseFormat | None = None) -> tuple[list[str], str]:
        if response_format is not None:
            text = json.dumps(demo_json(response_format.schema, _last_question(messages)[:200]), ensure_ascii=False)
        else:
            text = compose_answer(messages)
        cut = stop_position(text, stop)
        text = text if cut is None else text[:cut]
        chunks = _CHUNK_RE.findall(text)
        if max_tokens is None or estimate_tokens("".join(chunks)) <= max_tokens:
            return chunks, "stop"
        kept: list[str] = []
        for chunk in chunks:  # cut at a word boundary, like a real model hitting its cap
            if estimate_tokens("".join(kept) + chunk) > max_tokens:
                break
            kept.append(chunk)
        return kept, "length"

    def _tool_call(self, messages: Sequence[Message], tools: Tools | None) -> ToolCall | None:
        """With tools offered (and not refused by tool_choice "none"), the demo calls one, the
        chosen or the first, with arguments of its parameters' shape; once a function has
        answered (the last message is its result) it answers in text."""
        if tools is None or tools.choice == "none" or (messages and messages[-1].get("role") == "tool"):
            return None
        chosen = tools.choice["function"]["name"] if isinstance(tools.choice, dict) else tools.names()[0]
        function = next(tool["function"] for tool in tools.functions if tool["function"]["name"] == chosen)
        arguments = json.dumps(demo_json(function.get("parameters") or {"type": "object"}, _last_question(messages)[:200]), ensure_ascii=False)
        digest = hashlib.sha256(f"{chosen}:{arguments}:{len(messages)}".encode()).hexdigest()[:24]
        return ToolCall(f"call_demo{digest}", chosen, arguments)

    def _result(self, messages: Sequence[Message], model: str, text: str, finish: str,
                started: float, first_token_ms: float | None = None, tool_call: ToolCall | None = None) -> CompletionResult:
        input_tokens = sum(estimate_tokens(message_text(m.get("content"))) + 4 for m in messages)
        output_tokens = estimate_tokens(text + (tool_call.arguments if tool_call else ""))
        return CompletionResult(
            text=text, model=model or self.default_model or "demo-1", provider=self.name,
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens,
            latency_ms=round((time.perf_counter() - started) * 1000.0, 3), citations=[],
            finish_reason="tool_calls" if tool_call else finish, first_token_ms=first_token_ms, cost_usd=0.0,
            tool_calls=(tool_call,) if tool_call else (),
        )

    async def complete(self, *, messages: Sequence[Message], model: str, max_tokens: int | None = None,
                       temperature: float | None = None, timeout: float = 30.0, stop: Sequence[str] = (),
                       response_format: ResponseFormat | None = None, tools: Tools | None = None,
                       sampling: Sampling | None = None) -> CompletionResult:
        started = time.perf_counter()
        tool_call = self._tool_call(messages, tools)
        if tool_call is not None:
            return self._result(messages, model, "", "stop", started, tool_call=tool_call)
        chunks, finish = self._answer(messages, max_tokens, stop, response_format)
        return self._result(messages, model, "".join(chunks), finish, started)

    async def stream(self, *, messages: Sequence[Message], model: str, max_tokens: int | None = None,
                     temperature: float | None = None, timeout: float = 30.0, stop: Sequence[str] = (),
                     response_format: ResponseFormat | None = None, tools: Tools | None = None,
                     sampling: Sampling | None = None) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        tool_call = self._tool_call(messages, tools)
        if tool_call is not None:
            await asyncio.sleep(self.chunk_delay)
            first_token_ms = round((time.perf_counter() - started) * 1000.0, 3)
            yield StreamEvent("", tool_call=ToolCallPart(0, tool_call.id, tool_call.name, tool_call.arguments))
            yield StreamEvent("", self._result(messages, model, "", "stop", started, first_token_ms, tool_call))
            return
        chunks, finish = self._answer(messages, max_tokens, stop, response_format)
        first_token_ms = None
        for chunk in chunks:
            await asyncio.sleep(self.chunk_delay)  # sleep(0) still lets other tasks run
            if first_token_ms is None:
                first_token_ms = round((time.perf_counter() - started) * 1000.0, 3)
            yield StreamEvent(chunk)
        yield StreamEvent("", self._result(messages, model, "".join(chunks), finish, started, first_token_ms))

    async def list_models(self, timeout: float = 10.0) -> list[str]:
        return ["demo-1"]

    async def check_key(self, timeout: float = 10.0) -> None:
        return None
