"""Tool calling at the adapters: functions offered in each provider's terms, the calls an answer
makes (whole, or in pieces from a stream), and a conversation that carries calls and results."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from providers.adapters import Tools, aclose_shared_client, get_adapter
from tests.fakes import Behaviour, FakeProvider
from tests.fakes.helpers import adapter_for, collect


@pytest_asyncio.fixture(autouse=True)
async def close_shared_client():
    yield
    await aclose_shared_client()



WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOLS = Tools((WEATHER,))
ARGUMENTS = '{"city": "Lisbon"}'
ASKED = [{"role": "user", "content": "weather in Lisbon?"}]
# The conversation after the client ran the call.
ANSWERED = [*ASKED,
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": ARGUMENTS}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": '{"sky": "clear", "celsius": 21}'}]


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "openai_compatible", "openrouter"])
@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_chat_providers_are_offered_the_functions_and_their_calls_come_back(provider, method):
    behaviour = Behaviour(tool_calls=(("get_weather", ARGUMENTS), ("get_weather", '{"city": "Porto"}')))
    tools = Tools((WEATHER,), {"type": "function", "function": {"name": "get_weather"}}, parallel=True)
    with FakeProvider(provider, behaviour=behaviour) as fake:
        adapter = adapter_for(fake)
        if method == "complete":
            result = await adapter.complete(messages=ASKED, model="m", tools=tools)
        else:
            events, _, error = await collect(adapter, messages=ASKED, model="m", tools=tools)
            assert error is None
            result = events[-1].result
            parts = [event.tool_call for event in events if event.tool_call]
            assert [(p.index, p.id, p.name) for p in parts if p.id] == [(0, "call_fake1", "get_weather"), (1, "call_fake2", "get_weather")]
            assert "".join(p.arguments for p in parts if p.index == 0) == ARGUMENTS  # in pieces, joined
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_fake1", "get_weather", ARGUMENTS), ("call_fake2", "get_weather", '{"city": "Porto"}')]
    assert (result.text, result.finish_reason) == ("", "tool_calls")
    sent = fake.last_request.json
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is True


@pytest.mark.asyncio
async def test_a_conversation_with_a_call_and_its_result_goes_to_a_chat_provider_as_written():
    with FakeProvider("openai", behaviour=Behaviour(text="Clear, 21 °C.")) as fake:
        result = await adapter_for(fake).complete(messages=ANSWERED, model="m", tools=TOOLS)
    assert (result.text, result.tool_calls, result.finish_reason) == ("Clear, 21 °C.", (), "stop")
    assert fake.last_request.json["messages"] == ANSWERED


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_gemini_gets_function_declarations_and_its_calls_get_ids(method):
    with FakeProvider("gemini", behaviour=Behaviour(tool_calls=(("get_weather", ARGUMENTS),))) as fake:
        adapter = adapter_for(fake)
        if method == "complete":
            result = await adapter.complete(messages=ASKED, model="gemini-2.5-flash", tools=Tools((WEATHER,), "required"))
        else:
            events, _, error = await collect(adapter, messages=ASKED, model="gemini-2.5-flash", tools=Tools((WEATHER,), "required"))
            assert error is None
            result = events[-1].result
            assert [e.tool_call.name for e in events if e.tool_call] == ["get_weather"]
    [call] = result.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Lisbon"} and call.id.startswith("call_")
    assert result.finish_reason == "tool_calls"
    sent = fake.last_request.json
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "The weather in a city now.", "parametersJsonSchema": WEATHER["function"]["parameters"]}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.asyncio
async def test_gemini_is_sent_a_call_and_its_result_as_function_call_and_named_function_response():
    with FakeProvider("gemini", behaviour=Behaviour(text="Clear, 21 °C.")) as fake:
        result = await adapter_for(fake).complete(messages=ANSWERED, model="gemini-2.5-flash", tools=TOOLS)
    assert result.text == "Clear, 21 °C."
    assert fake.last_request.json["contents"] == [
        {"role": "user", "parts": [{"text": "weather in Lisbon?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Lisbon"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear", "celsius": 21}}}]},
    ]
    assert fake.last_request.json["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.asyncio
async def test_the_demo_calls_the_function_with_arguments_of_its_shape_then_reads_the_answer():
    demo = get_adapter("demo", chunk_delay=0)
    called = await demo.complete(messages=ASKED, model="demo-1", tools=TOOLS)
    [call] = called.tool_calls
    assert (call.name, json.loads(call.arguments), called.finish_reason) == ("get_weather", {"city": "demo"}, "tool_calls")
    events, _, _ = await collect(demo, messages=ASKED, model="demo-1", tools=TOOLS)
    assert [e.tool_call.name for e in events if e.tool_call] == ["get_weather"] and events[-1].result.tool_calls == (call,)
    answered = await demo.complete(messages=ANSWERED, model="demo-1", tools=TOOLS)
    assert not answered.tool_calls and "Your function answered: “{\"sky\": \"clear\", \"celsius\": 21}”" in answered.text
    assert not (await demo.complete(messages=ASKED, model="demo-1", tools=Tools((WEATHER,), "none"))).tool_calls
