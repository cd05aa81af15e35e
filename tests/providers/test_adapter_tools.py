"""Tool calling at the adapters: functions offered in each provider's terms, the calls an answer
makes (whole, or in pieces from a stream), and a conversation that carries calls and results."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from providers.adapters import ProviderError, Tools, aclose_shared_client, get_adapter
from tests.fakes import Behaviour, FakeProvider
from tests.fakes.helpers import KEY, adapter_for, collect


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


# ---- what the review of the first version found -------------------------------------------------

def _chunks_through(adapter, payloads):
    from providers.adapters.http_adapter import Accumulator

    acc = Accumulator("m")
    for payload in payloads:
        adapter._take(acc, payload)
    return acc


def test_calls_a_server_numbers_alike_stay_apart():
    """Ollama, SGLang and others give every call `index: 0`: the second call's id, name and
    arguments were appended to the first's, in a stream and in a whole answer alike."""
    adapter = get_adapter("openai_compatible", base_url="http://127.0.0.1:1/v1")

    def piece(**call):
        return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}}]}

    acc = _chunks_through(adapter, [
        piece(id="call_a", type="function", function={"name": "get_weather", "arguments": '{"city":'}),
        piece(function={"arguments": '"Lisbon"}'}),
        piece(id="call_b", type="function", function={"name": "get_time", "arguments": '{"tz":"WET"}'}),
        piece(id="call_b", function={"arguments": ""}),  # an id repeated on a later piece is no new call
    ])
    assert [(c.id, c.name, c.arguments) for c in acc.finished_tool_calls()] == [
        ("call_a", "get_weather", '{"city":"Lisbon"}'), ("call_b", "get_time", '{"tz":"WET"}')]
    assert [(p.index, p.id, p.name) for p in acc.tool_parts if p.id] == [(0, "call_a", "get_weather"), (1, "call_b", "get_time")]
    whole = _chunks_through(adapter, [{"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"index": 0, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}}]}])
    assert [c.name for c in whole.finished_tool_calls()] == ["get_weather", "get_time"]


def test_an_emoji_split_across_two_pieces_of_arguments_is_joined_back():
    from providers.adapters.http_adapter import Accumulator

    acc = Accumulator("m")
    for piece in ('{"text": "hi \ud83d', '\ude00"}'):
        acc.add_tool_call(0, "call_a", "say", piece)
    assert acc.finished_tool_calls()[0].arguments == '{"text": "hi \U0001f600"}'


def test_a_botched_gemini_call_is_an_error_not_an_empty_answer():
    adapter = get_adapter("gemini", api_key=KEY)
    with pytest.raises(ProviderError) as failed:
        _chunks_through(adapter, [{"candidates": [{"content": {}, "finishReason": "MALFORMED_FUNCTION_CALL"}]}])
    assert failed.value.category == "unavailable" and "MALFORMED_FUNCTION_CALL" in failed.value.message


@pytest.mark.asyncio
async def test_gemini_3_gets_its_signature_back_and_a_placeholder_for_calls_it_did_not_make():
    with FakeProvider("gemini", behaviour=Behaviour(tool_calls=(("get_weather", ARGUMENTS),))) as fake:
        called = await adapter_for(fake).complete(messages=ASKED, model="gemini-3-flash", tools=TOOLS)
        [call] = called.tool_calls
        assert call.signature in fake.wire.signatures
        fake.behaviour = Behaviour(text="Clear.")
        history = [*ASKED, {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}, "thought_signature": call.signature}]},
            {"role": "tool", "tool_call_id": call.id, "content": "clear"}]
        assert (await adapter_for(fake).complete(messages=history, model="gemini-3-flash", tools=TOOLS)).text == "Clear."
        assert fake.last_request.json["contents"][1]["parts"][0]["thoughtSignature"] == call.signature
        # The same conversation with no signature (a call another provider made): the placeholder.
        assert (await adapter_for(fake).complete(messages=ANSWERED, model="gemini-3-flash", tools=TOOLS)).text == "Clear."


@pytest.mark.asyncio
async def test_gemini_with_tools_and_a_json_answer_gets_the_shape_in_words_not_a_mime_type():
    """Gemini 2.5 refuses responseMimeType application/json beside tools (a 400)."""
    from providers.adapters import ResponseFormat

    with FakeProvider("gemini", behaviour=Behaviour(text='{"ok": true}')) as fake:
        result = await adapter_for(fake).complete(messages=ASKED, model="gemini-2.5-flash", tools=TOOLS,
                                                  response_format=ResponseFormat("json_schema", name="r", schema={"type": "object"}))
    assert result.text == '{"ok": true}'
    sent = fake.last_request.json
    assert "responseMimeType" not in sent.get("generationConfig", {})
    assert 'answer with one JSON object matching this JSON Schema: {"type": "object"}' in sent["systemInstruction"]["parts"][-1]["text"]


@pytest.mark.asyncio
async def test_openai_reasoning_models_are_not_sent_stop_and_dac_ends_the_answer_itself():
    with FakeProvider("openai", behaviour=Behaviour(text="Thought: done.\nObservation: more")) as fake:
        result = await adapter_for(fake).complete(messages=ASKED, model="o4-mini", stop=["\nObservation:"])
        assert "stop" not in fake.last_request.json and result.text == "Thought: done."
        await adapter_for(fake).complete(messages=ASKED, model="gpt-4o-mini", stop=["\nObservation:"])
        assert fake.last_request.json["stop"] == ["\nObservation:"]


def test_gemini_takes_empty_arguments_as_no_arguments():
    adapter = get_adapter("gemini", api_key=KEY)
    history = [*ASKED, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "now", "arguments": ""}}]}]
    body = adapter._body(history, "gemini-2.5-flash", None, None, False, tools=TOOLS)
    assert body["contents"][1]["parts"][0]["functionCall"]["args"] == {}


def test_arguments_sent_as_an_object_or_not_at_all_come_back_as_json_text():
    """llama.cpp and TGI have sent `arguments` as the object itself; DAC passed "" on."""
    adapter = get_adapter("openai_compatible", base_url="http://127.0.0.1:1/v1")
    acc = _chunks_through(adapter, [{"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lisbon"}}},
        {"id": "c2", "type": "function", "function": {"name": "now", "arguments": None}}]}}]}])
    acc.close_tool_calls()
    assert [c.arguments for c in acc.finished_tool_calls()] == ['{"city": "Lisbon"}', "{}"]


def test_a_streamed_call_without_an_id_gets_one_with_its_first_piece():
    """vLLM, SGLang and LM Studio may send none: the client had a call it could not answer."""
    adapter = get_adapter("openai_compatible", base_url="http://127.0.0.1:1/v1")
    acc = _chunks_through(adapter, [
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "now", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "late_id", "function": {"arguments": "{}"}}]}}]},
    ])
    first = acc.tool_parts[0]
    assert first.id.startswith("call_") and first.name == "now"
    assert [(c.id, c.arguments) for c in acc.finished_tool_calls()] == [(first.id, "{}")]  # the id the client has


def test_a_call_without_a_name_is_an_error_the_client_could_not_send_it_back():
    adapter = get_adapter("gemini", api_key=KEY)
    acc = _chunks_through(adapter, [{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}, "finishReason": "STOP"}]}])
    with pytest.raises(ProviderError, match="without a name"):
        adapter._result(acc, 0.0)


def test_a_botched_gemini_call_after_text_keeps_the_text():
    adapter = get_adapter("gemini", api_key=KEY)
    acc = _chunks_through(adapter, [
        {"candidates": [{"content": {"parts": [{"text": "Let me look that up."}]}}]},
        {"candidates": [{"content": {}, "finishReason": "MALFORMED_FUNCTION_CALL"}]}])
    assert acc.text == "Let me look that up."


def test_a_whole_answer_with_calls_and_a_stop_sequence_finishes_with_its_calls():
    adapter = get_adapter("openai_compatible", base_url="http://127.0.0.1:1/v1")
    from providers.adapters.http_adapter import Accumulator

    acc = Accumulator("m", ("STOP",))
    adapter._take(acc, {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"content": "Thought: x STOP y", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]})
    result = adapter._result(acc, 0.0)
    assert (result.text, result.finish_reason, [c.name for c in result.tool_calls]) == ("Thought: x ", "tool_calls", ["f"])


@pytest.mark.asyncio
async def test_the_placeholder_signature_goes_to_gemini_3_only():
    with FakeProvider("gemini", behaviour=Behaviour(text="Clear.")) as fake:
        await adapter_for(fake).complete(messages=ANSWERED, model="gemini-3-flash", tools=TOOLS)
        assert fake.last_request.json["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
        await adapter_for(fake).complete(messages=ANSWERED, model="gemini-2.5-flash", tools=TOOLS)
        assert "thoughtSignature" not in fake.last_request.json["contents"][1]["parts"][0]
