"""The demo provider: offline, deterministic, clearly labelled."""

from __future__ import annotations

import socket
import time

import pytest

from providers.adapters import get_adapter
from providers.adapters.demo import LABEL
from tests.fakes.helpers import MESSAGES, collect, deltas

pytestmark = pytest.mark.asyncio


def demo(chunk_delay: float = 0.0):
    return get_adapter("demo", api_key=None, chunk_delay=chunk_delay)


async def test_the_demo_answer_says_plainly_that_it_is_the_demo_provider():
    result = await demo().complete(messages=MESSAGES, model="demo-1")

    assert result.text.startswith("(Demo answer — not from a real model.)")
    assert LABEL in result.text
    assert result.provider == "demo" and result.model == "demo-1"


async def test_the_same_conversation_always_gets_the_same_answer():
    first = await demo().complete(messages=MESSAGES, model="demo-1")
    second = await get_adapter("demo").complete(messages=[dict(m) for m in MESSAGES], model="demo-1")

    assert first.text == second.text
    assert (first.input_tokens, first.output_tokens) == (second.input_tokens, second.output_tokens)


async def test_a_different_question_gets_a_different_answer_that_quotes_it():
    one = await demo().complete(messages=[{"role": "user", "content": "How do tides work?"}], model="demo-1")
    two = await demo().complete(messages=[{"role": "user", "content": "Why is the sky blue?"}], model="demo-1")

    assert one.text != two.text
    assert "How do tides work?" in one.text and "Why is the sky blue?" in two.text


async def test_the_earlier_messages_it_mentions_are_the_conversations_not_the_system_prompt():
    system = {"role": "system", "content": "You are DAC's assistant."}
    first = await demo().complete(messages=[system, {"role": "user", "content": "hello there"}], model="demo-1")
    later = await demo().complete(messages=[
        system, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "and now?"},
    ], model="demo-1")

    assert "earlier message" not in first.text
    assert "I can see 2 earlier messages in this thread." in later.text


async def test_asking_for_code_gets_a_fenced_code_block():
    ask = [{"role": "user", "content": "Write a python function that reverses a string"}]

    result = await demo().complete(messages=ask, model="demo-1")

    assert "```python\n" in result.text and result.text.count("```") == 2


async def test_a_plain_question_gets_markdown_but_no_code_block():
    result = await demo().complete(messages=[{"role": "user", "content": "Tell me about tides"}], model="demo-1")

    assert "**" in result.text and "\n- " in result.text
    assert "```" not in result.text


async def test_token_counts_are_plausible_and_add_up():
    result = await demo().complete(messages=MESSAGES, model="demo-1")

    assert result.input_tokens > 0 and result.output_tokens > 20
    assert result.total_tokens == result.input_tokens + result.output_tokens
    assert result.output_tokens == pytest.approx(len(result.text) / 4, abs=1)


async def test_the_stream_is_word_by_word_and_joins_to_the_complete_answer():
    complete = await demo().complete(messages=MESSAGES, model="demo-1")

    events, _, error = await collect(demo(), model="demo-1")

    assert error is None
    assert deltas(events) == events[-1].result.text == complete.text
    assert len(events) > 20
    assert all(len(e.delta.split()) <= 1 for e in events)


async def test_the_stream_paces_itself_with_the_chunk_delay():
    started = time.monotonic()
    events, arrived, _ = await collect(demo(chunk_delay=0.01), model="demo-1")

    assert arrived[-1] - started >= 0.01 * (len(events) - 1) * 0.9
    assert arrived[1] - arrived[0] >= 0.005


async def test_max_tokens_cuts_the_answer_with_finish_reason_length():
    result = await demo().complete(messages=MESSAGES, model="demo-1", max_tokens=10)

    assert result.finish_reason == "length"
    assert result.output_tokens <= 10
    assert result.text.startswith("(Demo answer")


async def test_the_demo_never_opens_a_socket(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the demo provider tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    await demo().complete(messages=MESSAGES, model="demo-1")
    await collect(demo(), model="demo-1")
    assert await demo().check_key() is None
    assert await demo().list_models() == ["demo-1"]
