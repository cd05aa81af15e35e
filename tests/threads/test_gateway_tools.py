"""Tool calling through `/v1/chat/completions`, driven by the official `openai` SDK: an agent's
loop (offer functions, get calls, send the results, get the answer) on each kind of provider."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from audit.models import AuditLog
from providers.services.quota import quota_usage
from tenants.context import tenant_context
from tests.assertions import tokens_counted
from tests.fakes import Behaviour
from threads.models import Thread

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Lisbon?"}]


@pytest.fixture
def sdk(asgi_server, token_a):
    return openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=token_a, max_retries=0, timeout=20)


def _loop(sdk, model: str, stream: bool) -> tuple[str, str, str, str]:
    """One turn of an agent: the call the model asks for, then its answer to the call's result."""
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for chunk in sdk.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], stream=True):
            for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = delta.id or call["id"]
                call["name"] = (delta.function.name if delta.function else None) or call["name"]
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
            finish = (chunk.choices[0].finish_reason if chunk.choices else None) or finish
        [call] = calls.values()
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        choice = sdk.chat.completions.create(model=model, messages=ASK, tools=[WEATHER]).choices[0]
        assert choice.message.content is None
        [call] = choice.message.tool_calls
        call_id, name, arguments, finish = call.id, call.function.name, call.function.arguments, choice.finish_reason
    assert (name, json.loads(arguments), finish) == ("get_weather", {"city": "Lisbon"}, "tool_calls")
    followed = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": '{"sky": "clear", "celsius": 21}'}]
    answer = sdk.chat.completions.create(model=model, messages=followed, tools=[WEATHER]).choices[0]
    return call_id, answer.message.content, answer.finish_reason, arguments


@pytest.mark.parametrize("provider, model", [("openai", "openai/gpt-4o-mini"), ("openrouter", "openrouter/openai/gpt-4o-mini"),
                                             ("gemini", "gemini/gemini-2.5-flash")])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_agent_loop_gets_the_call_and_then_the_answer(sdk, fakes, provider, model, stream):
    """`tools` was a 400: agents could not use the gateway at all."""
    fake = fakes[provider]
    fake.enqueue(Behaviour(tool_calls=(("get_weather", '{"city": "Lisbon"}'),)), Behaviour(text="Clear and 21 °C in Lisbon."))
    call_id, text, finish, _ = _loop(sdk, model, stream)
    assert (text, finish) == ("Clear and 21 °C in Lisbon.", "stop")
    first, second = (request.json for request in fake.requests)
    if provider == "gemini":
        assert first["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
        assert second["contents"][-1] == {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"sky": "clear", "celsius": 21}}}]}
        assert call_id.startswith("call_")
    else:
        assert first["tools"] == [WEATHER] and first["tool_choice"] == "auto"
        assert second["messages"][-1] == {"role": "tool", "tool_call_id": call_id, "content": '{"sky": "clear", "celsius": 21}'}
        assert second["messages"][-2]["tool_calls"][0]["id"] == call_id


def test_the_call_is_audited_by_function_name_and_counted(sdk, fakes, org_a):
    fakes["openai"].behaviour = Behaviour(tool_calls=(("get_weather", '{"city": "Lisbon"}'),), input_tokens=40, output_tokens=9)
    sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER])
    with tenant_context(org_a):
        call = AuditLog.objects.filter(event="provider.call").latest("seq")
    assert call.details["tool_calls"] == ["get_weather"] and "Lisbon" not in json.dumps(call.details)
    assert quota_usage(org_id=org_a.id, provider="openai").tokens_used == 49


def test_model_auto_with_tools_routes_as_structured_and_passes_over_perplexity(sdk, fakes):
    """Even a question for fresh facts: Perplexity calls no client functions."""
    fakes["openai"].behaviour = Behaviour(tool_calls=(("get_weather", '{"city": "Lisbon"}'),))
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "latest news about the weather in Lisbon today"}], tools=[WEATHER])
    assert raw.headers["x-dac-provider"] != "perplexity"
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "get_weather"
    assert not fakes["perplexity"].requests
    quiet = sdk.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "say hi to the team"}],
                                                         tools=[WEATHER])
    assert quiet.headers["x-dac-rule"] == "structured"


def test_the_demo_provider_calls_functions_too(asgi_server, token_a):
    """No key configured: `make run`'s demo answers tool calls, so an agent can be tried offline."""
    client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=token_a, max_retries=0, timeout=20)
    choice = client.chat.completions.create(model="auto", messages=ASK, tools=[WEATHER]).choices[0]
    assert choice.finish_reason == "tool_calls" and json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "demo"}


@pytest.mark.parametrize("extra, param, says", [
    ({"model": "perplexity/sonar"}, "provider", "perplexity does not call functions"),
    ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools", "tools[0] must be"),
    ({"tools": [WEATHER, WEATHER]}, "tools", "the same function twice"),
    ({"tools": [{**WEATHER, "function": {**WEATHER["function"], "parameters": "a city"}}]}, "tools", "parameters must be a JSON Schema"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice", "naming one of the tools"),
    ({"tool_choice": {"type": "function", "function": "get_weather"}}, "tool_choice", "naming one of the tools"),
    ({"tools": [], "tool_choice": "required"}, "tool_choice", "no tools are given"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "must be a boolean"),
    ({"functions": [WEATHER["function"]]}, "functions", "legacy function calling: use tools"),
    ({"messages": [*ASK, {"role": "tool", "content": "21"}]}, "messages", "tool_call_id must name a tool call"),
    ({"messages": [*ASK, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "x"}}]}]},
     "messages", "tool_calls must be a list of calls"),
], ids=["perplexity", "bad-name", "twice", "parameters-text", "choice-unknown", "choice-function-text", "choice-without-tools", "parallel-text",
        "legacy-functions", "tool-without-id", "call-without-arguments"])
def test_what_a_tool_request_gets_wrong_is_a_400_naming_it(asgi_server, token_a, fakes, extra, param, says):
    body = {"model": "openai/gpt-4o-mini", "messages": ASK, "tools": [WEATHER], **extra}
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token_a}"}, timeout=20)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert says in error["message"] and (error["param"] == param or param == "provider"), error
    assert not any(fake.requests for fake in fakes.values())


def test_tools_with_a_thread_are_a_400_and_nothing_is_saved(sdk, fakes, org_a):
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER],
                                    extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    assert "a thread keeps text messages only" in refused.value.message
    with tenant_context(org_a):
        assert not thread.messages.exists()


def test_a_gemini_3_agent_loop_carries_the_calls_thought_signature(sdk, fakes):
    """Gemini 3 refuses a call sent back without its thought signature (a 400 on turn two); the
    client never sees it, so DAC keeps it by the call's id."""
    fake = fakes["gemini"]
    fake.enqueue(Behaviour(tool_calls=(("get_weather", '{"city": "Lisbon"}'),)), Behaviour(text="Clear."))
    call_id, text, finish, _ = _loop(sdk, "gemini/gemini-3-flash", stream=False)
    assert (text, finish) == ("Clear.", "stop")
    sent = fake.requests[1].json["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] in fake.wire.signatures and "signature" not in json.dumps(fake.requests[0].json)


def test_the_sdks_stream_helper_ends_a_streamed_call_as_a_plain_one(sdk, fakes):
    """Its final message had content '' where a plain call has None (the role chunk's content
    was "" before any call came); a text answer with tools offered keeps its text."""
    fakes["openai"].behaviour = Behaviour(tool_calls=(("get_weather", '{"city": "Lisbon"}'),))
    with sdk.chat.completions.stream(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER]) as stream:
        message = stream.get_final_completion().choices[0].message
    assert message.content is None and message.tool_calls[0].function.name == "get_weather"
    fakes["openai"].behaviour = Behaviour(text="No need to look: it is sunny.")
    with sdk.chat.completions.stream(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER]) as stream:
        message = stream.get_final_completion().choices[0].message
    assert message.content == "No need to look: it is sunny." and not message.tool_calls


def test_a_stream_cut_after_pieces_of_a_call_is_counted(sdk, fakes, org_a):
    """The client had the call's pieces; the reservation was given back in full (as if nothing came)."""
    fakes["openai"].behaviour = Behaviour(tool_calls=(("get_weather", '{"city": "' + "L" * 400 + '"}'),),
                                          midstream_error="unavailable", error_after=3)
    chunks = []
    with pytest.raises(openai.APIError, match="The answer was cut off"):
        for chunk in sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER], stream=True):
            chunks.append(chunk)
    assert any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    counted = tokens_counted(org_a, "openai")  # the prompt and the ~280 characters of arguments that arrived
    assert quota_usage(org_id=org_a.id, provider="openai").requests_used == 1 and counted >= 70


def test_a_conversation_holding_calls_is_not_routed_to_a_provider_that_calls_none(sdk, fakes):
    """A summary of a tool history (no tools offered) went to Perplexity, which takes no tool turns;
    and tool_choice "none" dropped the tools some providers need beside such turns."""
    fakes["openai"].behaviour = Behaviour(text="It was sunny.")
    history = [{"role": "user", "content": "latest news about the weather in Lisbon today"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=history)
    assert raw.headers["x-dac-provider"] != "perplexity" and not fakes["perplexity"].requests
    sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=history, tools=[WEATHER], tool_choice="none")
    assert fakes["openai"].requests[-1].json["tool_choice"] == "none" and fakes["openai"].requests[-1].json["tools"] == [WEATHER]


def test_a_schema_nested_deeper_than_any_provider_takes_is_a_400(asgi_server, token_a, fakes):
    """~250 levels made the call fail after the provider had answered (RecursionError hashing the
    request): a 502, no provider.call audit row, nothing counted."""
    deep: dict = {"type": "object"}
    for _ in range(250):
        deep = {"type": "object", "properties": {"a": deep}}
    for extra in ({"tools": [{"type": "function", "function": {"name": "f", "parameters": deep}}]},
                  {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": deep}}}):
        response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": ASK, **extra},
                              headers={"Authorization": f"Bearer {token_a}"}, timeout=20)
        assert response.status_code == 400 and "nested at most 32 deep" in response.json()["error"]["message"], response.text
    assert not fakes["openai"].requests


def test_a_tool_result_must_answer_a_call_made_earlier_and_once(asgi_server, token_a, fakes):
    called = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    for messages, says in (([*ASK, {"role": "tool", "tool_call_id": "call_nobody_made", "content": "21"}],
                            "must name a tool call of an earlier assistant message"),
                           ([*ASK, called, {"role": "tool", "tool_call_id": "c1", "content": "21"},
                             {"role": "tool", "tool_call_id": "c1", "content": "22"}], "answers the tool call 'c1' a second time")):
        response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": messages},
                              headers={"Authorization": f"Bearer {token_a}"}, timeout=20)
        assert response.status_code == 400 and says in response.json()["error"]["message"], response.text
    assert not fakes["openai"].requests


def test_the_functions_offered_are_counted_when_the_answer_is_counted_by_estimate(sdk, fakes, org_a):
    """A stream cut before its usage counts the prompt by estimate: the tools offered were left out
    (one 40,000-character description counted as 15 tokens)."""
    big = {"type": "function", "function": {**WEATHER["function"], "description": "d" * 40_000}}
    fakes["openai"].behaviour = Behaviour(tool_calls=(("get_weather", '{"city": "Lisbon"}'),), midstream_error="unavailable", error_after=2)
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, tools=[big], stream=True, max_tokens=10))
    assert tokens_counted(org_a, "openai") > 10_000


def test_tools_not_to_be_called_are_accepted_with_a_thread(sdk, fakes, org_a):
    fakes["openrouter"].behaviour = Behaviour(text="fine")
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    completion = sdk.chat.completions.create(model="openrouter/meta/llama", messages=ASK, tools=[WEATHER], tool_choice="none",
                                             extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    assert completion.choices[0].message.content == "fine" and "tools" not in fakes["openrouter"].requests[0].json
