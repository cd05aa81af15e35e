"""The OpenAI-compatible gateway, driven by the official `openai` SDK over real HTTP."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from audit.models import AuditLog
from providers.services.quota import estimate_tokens, quota_usage
from tenants.context import tenant_context
from tests.assertions import counted_without_usage, settled_answer, tokens_counted
from tests.fakes import Behaviour
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db(transaction=True)




@pytest.fixture
def sdk(asgi_server, token_a):
    return openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=token_a, max_retries=0, timeout=20)




def test_sdk_plain_completion_with_auto_routing(sdk, fakes):
    fakes["openai"].behaviour = Behaviour(text="def f(): pass", input_tokens=11, output_tokens=4)
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "write a python function that returns nothing"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "def f(): pass"
    assert completion.model.startswith("openai/")
    assert completion.usage.prompt_tokens == 11 and completion.usage.completion_tokens == 4
    assert raw.headers["x-dac-provider"] == "openai" and raw.headers["x-dac-rule"] == "structured"
    assert float(raw.headers["x-dac-overhead-ms"]) >= 0
    assert "x-ratelimit-remaining-requests" in raw.headers


def test_sdk_streaming_with_usage(sdk, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="a b c d", chunks=4)
    stream = sdk.chat.completions.create(
        model="openrouter/meta/llama", messages=[{"role": "user", "content": "tell me a story"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a b c d"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert fakes["openrouter"].requests[0].json["model"] == "meta/llama"


def test_perplexity_citations_come_through(sdk, fakes):
    fakes["perplexity"].behaviour = Behaviour(text="It is sunny.", citations=["https://weather.example/lisbon"])
    raw = sdk.chat.completions.with_raw_response.create(model="perplexity/sonar", messages=[{"role": "user", "content": "weather in lisbon now"}])
    assert raw.http_response.json()["citations"] == ["https://weather.example/lisbon"]


def test_without_thread_header_nothing_is_stored_but_the_call_is_audited(sdk, fakes, org_a):
    sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}])
    with tenant_context(org_a):
        assert not Message.objects.exists()
        assert AuditLog.objects.filter(event="provider.call").exists()


def test_with_thread_header_the_exchange_is_saved(sdk, fakes, org_a):
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello"}], extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    with tenant_context(org_a):
        assert list(Message.objects.filter(thread=thread).values_list("role", flat=True)) == ["user", "assistant"]


def test_a_message_with_a_null_character_for_a_thread_is_a_400_and_nothing_is_saved(sdk, fakes, org_a):
    """PostgreSQL's text cannot hold U+0000: it was a 500 (DataError at the save)."""
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello \x00 world"}],
                                    extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    assert refused.value.status_code == 400 and "null character" in refused.value.message
    with tenant_context(org_a):
        assert not Message.objects.filter(thread=thread).exists()
    assert not fakes["openai"].requests and not fakes["openrouter"].requests


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("in_thread", [False, True], ids=["no-thread", "thread"])
def test_a_message_with_half_a_surrogate_pair_is_a_400_and_nothing_is_saved(asgi_server, token_a, fakes, org_a, in_thread, stream):
    """A lone surrogate (JSON's "\\ud83d" without its other half) cannot be sent on to a provider
    nor saved: it was a 502 'DAC failed while answering' (500 with a thread, a failed stream)."""
    headers = {"Authorization": f"Bearer {token_a}", "Content-Type": "application/json"}
    if in_thread:
        with tenant_context(org_a):
            thread = Thread.objects.create(org=org_a)
        headers["X-DAC-Thread-Id"] = str(thread.pk)
    body = '{"model": "auto", "stream": %s, "messages": [{"role": "user", "content": "half \\ud83d an emoji"}]}' % str(stream).lower()
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", content=body.encode(), headers=headers, timeout=20)
    assert response.status_code == 400, response.text
    assert "U+D83D, half of a UTF-16 surrogate pair" in response.json()["error"]["message"]
    if in_thread:
        with tenant_context(org_a):
            assert not Message.objects.filter(thread=thread).exists()
    assert not fakes["openai"].requests and not fakes["openrouter"].requests


def test_a_message_with_a_null_character_without_a_thread_is_answered_and_audited(sdk, fakes, org_a):
    """Nothing is stored but the audit record, whose routing reason quotes the message: U+0000
    there is stored as U+FFFD (it made the append fail: '503 unrecorded' after the provider had
    answered)."""
    fakes["openrouter"].behaviour = Behaviour(text="fine")
    completion = sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello \x00 there"}])
    assert completion.choices[0].message.content == "fine"
    with tenant_context(org_a):
        decision = AuditLog.objects.get(event="routing.decision")
    assert "\ufffd" in decision.details["reason"] and "\x00" not in decision.details["reason"]


def test_models_lists_configured_providers_and_auto(sdk, fakes):
    ids = [model.id for model in sdk.models.list()]
    assert ids[0] == "auto"
    assert "openai/gpt-4o-mini" in ids and "perplexity/sonar" in ids and "gemini/gemini-2.5-flash" in ids


def test_one_model_is_retrieved_by_its_id_as_the_sdk_asks(sdk, asgi_server, token_a, fakes):
    """`models.retrieve` was a 404 for every model, listed or not."""
    assert sdk.models.retrieve("auto").id == "auto"
    retrieved = sdk.models.retrieve("openai/gpt-4o-mini")
    assert (retrieved.id, retrieved.owned_by) == ("openai/gpt-4o-mini", "openai")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("openai/no-such-model")
    assert missing.value.body["code"] == "model_not_found"
    # The demo answers when named, keys or not; it was listed and retrievable only without keys.
    assert sdk.models.retrieve("demo/demo-1").id == "demo/demo-1" and "demo/demo-1" in [m.id for m in sdk.models.list()]
    demo = sdk.chat.completions.create(model="demo/demo-1", messages=[{"role": "user", "content": "hi"}])
    assert "no provider key" not in demo.choices[0].message.content
    wrong = httpx.get(f"{asgi_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {token_a}"})
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")


def test_a_conversation_without_a_thread_reaches_the_provider_as_the_client_wrote_it(sdk, fakes):
    """DAC's own system prompt ('You are the assistant of DAC... Use Markdown where it helps') was
    added to it, changing what a client's JSON-only or formatting instructions asked for. Twice:
    the first call prepares on the thread pool, the second (caches warm) on the event loop."""
    fakes["openrouter"].behaviour = Behaviour(text="[1, 2]")
    conversation = [{"role": "system", "content": "Reply with a JSON array only."}, {"role": "user", "content": "two numbers"}]
    for _ in range(2):
        sdk.chat.completions.create(model="openrouter/meta/llama", messages=conversation)
    assert [request.json["messages"] for request in fakes["openrouter"].requests] == [conversation, conversation]


def test_bad_token_is_401_in_openai_shape(asgi_server):
    client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key="dac_nope_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"model": "auto", "messages": []}',
        b'{"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}',
        b'{"model": "auto", "messages": [{"role": "user", "content": 42}]}',
        b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 999999999}',
        b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}',
        b'{"model": "skynet/x", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"messages": [{"role": "user", "content": "hi"}]}',
    ],
)
def test_bad_input_is_400_in_openai_shape_and_nothing_stored(asgi_server, token_a, org_a, body):
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", content=body, headers={"Authorization": f"Bearer {token_a}", "Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] and "type" in error and "param" in error and "code" in error
    with tenant_context(org_a):
        assert not AuditLog.objects.filter(event="provider.call").exists()


def test_a_streamed_answer_after_a_fallback_names_the_provider_that_answered(sdk, fakes, settings):
    """The chunks named the provider that had failed before the first token (the first candidate)."""
    settings.DAC_PROVIDER_RETRIES = 0
    for name, fake in fakes.items():
        fake.behaviour = Behaviour(error="unavailable") if name == "openai" else Behaviour(text="from the fallback", chunks=3)
    chunks = list(sdk.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "write a python function that returns nothing"}], stream=True))
    text_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(c.choices[0].delta.content for c in text_chunks) == "from the fallback"
    answered = {c.model.split("/")[0] for c in text_chunks}
    assert len(answered) == 1 and answered != {"openai"} and chunks[-1].model.split("/")[0] in answered


def test_provider_failure_maps_to_504_for_timeouts(sdk, fakes, settings):
    settings.DAC_PROVIDER_TIMEOUT = 0.3
    settings.DAC_PROVIDER_RETRIES = 0
    fakes["gemini"].behaviour = Behaviour(delay=2.0)
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 504


def test_quota_exhausted_is_429_with_retry_after(sdk, fakes, org_a):
    from django.core.management import call_command

    call_command("set_limits", "org-a", "--requests", "1")
    sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as info:
        sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert int(info.value.response.headers["retry-after"]) > 0
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "limit" in info.value.message


def test_when_no_provider_has_room_the_routed_providers_refusal_is_reported_naming_the_others(sdk, fakes, org_a):
    """The last candidate's refusal was raised: a 400 'lower max_tokens' from a fallback with a
    small token limit hid that the routed provider was simply out of requests for the day."""
    from audit.services import Actor
    from providers.services.limits import quota_limit_set

    quota_limit_set(org_id=org_a.id, provider="openai", requests_per_day=1, tokens_per_day=None, actor=Actor.system("test"))
    for provider in ("perplexity", "gemini", "openrouter"):
        quota_limit_set(org_id=org_a.id, provider=provider, requests_per_day=None, tokens_per_day=100, actor=Actor.system("test"))
    ask = {"model": "auto", "messages": [{"role": "user", "content": "write a python function that returns nothing"}]}
    sdk.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(**ask, max_tokens=500)
    error = refused.value.body
    assert error["code"] == "quota_exceeded" and refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error["message"].startswith("Daily request limit of 1 for openai reached")
    assert "could not take it either: " in error["message"] and "gemini: This request may use up to" in error["message"]


def test_a_provider_turned_off_is_a_403_when_named_and_passed_over_by_auto(sdk, fakes, org_a):
    from audit.services import Actor
    from providers.services.limits import quota_limit_set

    quota_limit_set(org_id=org_a.id, provider="openai", requests_per_day=0, tokens_per_day=None, actor=Actor.system("test"))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "openai is turned off for this organization" in refused.value.message
    assert "retry-after" not in refused.value.response.headers
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "write a python function that returns nothing"}])
    assert raw.headers["x-dac-provider"] != "openai" and not fakes["openai"].requests


def test_the_gateway_runs_on_the_short_async_middleware_stack(asgi_server, token_a):
    gateway = httpx.get(f"{asgi_server.url}/v1/models", headers={"Authorization": f"Bearer {token_a}"})
    page = httpx.get(f"{asgi_server.url}/login/")
    assert gateway.status_code == 200 and page.status_code == 200
    # Pages go through Django's full stack (XFrameOptionsMiddleware among others); the gateway
    # does not, but keeps the security headers and CSP.
    assert "x-frame-options" in page.headers and "x-frame-options" not in gateway.headers
    assert "content-security-policy" in gateway.headers


@pytest.mark.parametrize("behaviour, within_ms", [
    (Behaviour(text="one two three four five six seven eight nine ten", chunk_gap=0.3), 1500),  # the stream takes 2.7 s
    (Behaviour(text="one two three", stall_after_first=30), 3000),  # nothing for 30 s after the first piece
], ids=["steady", "stalled"])
def test_a_stream_whose_client_left_stops_reading_the_provider(asgi_server, token_a, fakes, org_a, behaviour, within_ms):
    """Without a thread nothing keeps the answer, so reading on after the client went away would
    only spend the org's tokens: the provider call ends at once (not at the provider's next piece
    or its timeout, even when it stalls), audited with what it took."""
    fakes["openrouter"].behaviour = behaviour
    body = {"model": "openrouter/meta/llama", "stream": True, "messages": [{"role": "user", "content": "tell me a story"}]}
    with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {token_a}"}, timeout=20) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if '"content":"one' in line:
                    break  # the client goes away after the first token
    call = _audited_call(org_a, timeout=5)
    assert call.details["latency_ms"] < within_ms
    assert call.details["abandoned"] is True
    with tenant_context(org_a):
        decision = AuditLog.objects.get(event="routing.decision")
    assert decision.details["outcome"] == "abandoned"
    # It counts the prompt and the little text that arrived, not a full-length answer.
    sent = fakes["openrouter"].requests[0].json["messages"]  # the conversation as the client wrote it
    assert counted_without_usage(sent, "") < tokens_counted(org_a, "openrouter") <= counted_without_usage(sent, behaviour.text)


def test_a_stream_kept_in_a_thread_completes_after_its_client_left(asgi_server, token_a, fakes, org_a):
    fakes["openrouter"].behaviour = Behaviour(text="alpha beta gamma delta epsilon", chunk_gap=0.2)
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    body = {"model": "openrouter/meta/llama", "stream": True, "messages": [{"role": "user", "content": "tell me a story"}]}
    headers = {"Authorization": f"Bearer {token_a}", "X-DAC-Thread-Id": str(thread.pk)}
    with httpx.Client(base_url=asgi_server.url, headers=headers, timeout=20) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if '"content":"alpha' in line:
                    break
    answer = settled_answer(org_a, thread)
    assert answer.status == "complete" and answer.content == "alpha beta gamma delta epsilon"


def test_a_plain_call_whose_client_left_cancels_the_provider_request(asgi_server, token_a, fakes, org_a):
    fakes["openrouter"].behaviour = Behaviour(text="a slow answer", delay=3.0)
    body = {"model": "openrouter/meta/llama", "messages": [{"role": "user", "content": "think hard"}]}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after half a second
        httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token_a}"}, timeout=0.5)
    call = _audited_call(org_a)
    assert call.details["latency_ms"] < 2000  # the provider would have taken 3 s
    assert call.details["abandoned"] is True
    assert len(fakes["openrouter"].requests) == 1  # not retried, not moved to another provider
    # The provider was sent the whole request and most likely answers it: the estimate stays counted.
    sent = fakes["openrouter"].requests[0].json["messages"]
    assert tokens_counted(org_a, "openrouter") == estimate_tokens(sent)


def test_a_plain_call_whose_client_left_before_its_retry_counts_nothing(asgi_server, token_a, fakes, org_a):
    """The first attempt failed (503, retry in 2 s); the client left during the wait, so no second
    request goes out and the call's reservation is given back, as for any call that failed."""
    fakes["openrouter"].behaviour = Behaviour(error="unavailable", retry_after=2)
    body = {"model": "openrouter/meta/llama", "messages": [{"role": "user", "content": "think hard"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token_a}"}, timeout=0.5)
    assert tokens_counted(org_a, "openrouter") == 0
    assert quota_usage(org_id=org_a.id, provider="openrouter").requests_used == 0
    assert len(fakes["openrouter"].requests) == 1


def test_an_answer_whose_provider_reports_no_usage_counts_its_prompt_and_text(sdk, fakes, org_a):
    """Not the reservation's estimate (the prompt plus max_tokens): what was asked and answered."""
    fakes["openrouter"].behaviour = Behaviour(text="a short answer", input_tokens=0, output_tokens=0)
    sdk.chat.completions.create(model="openrouter/meta/llama", max_tokens=4000, messages=[{"role": "user", "content": "hello"}])
    sent = fakes["openrouter"].requests[0].json["messages"]
    assert tokens_counted(org_a, "openrouter") == counted_without_usage(sent, "a short answer")


def _audited_call(org, timeout: float = 10.0) -> AuditLog:
    """The org's provider.call audit row, once the answer running in the background wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_context(org):
            call = AuditLog.objects.filter(event="provider.call").first()
        if call is not None:
            return call
        time.sleep(0.05)
    raise AssertionError("the call was never audited")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_text_utf8_or_postgresql_cannot_carry_becomes_a_replacement_character(asgi_server, token_a, fakes, org_a, stream):
    """A provider's lone surrogate (a JSON escape such as "\\ud83d") or U+0000, in its answer or
    the model it names, made the answer an internal error and left a thread's answer streaming
    for good; now each becomes U+FFFD where the provider's text enters DAC."""
    fakes["openrouter"].behaviour = Behaviour(text="smile \ud83d and \x00 nul", model="llama\ud800")
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    body = {"model": "openrouter/meta/llama", "stream": stream, "messages": [{"role": "user", "content": "tell me a story"}]}
    headers = {"Authorization": f"Bearer {token_a}", "X-DAC-Thread-Id": str(thread.pk)}
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    if stream:
        chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
        content = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    else:
        content = response.json()["choices"][0]["message"]["content"]
    assert content == "smile \ufffd and \ufffd nul"
    answer = settled_answer(org_a, thread)
    assert (answer.status, answer.content, answer.model) == ("complete", "smile \ufffd and \ufffd nul", "llama\ufffd")


_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
_USER = {"role": "user", "content": "hello"}


@pytest.mark.parametrize("extra, param, says", [
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "response_format", "json_schema.name must be"),
    ({"response_format": {"type": "regex", "regex": {"regex": "a+"}}}, "response_format", 'type is "text", "json_object"'),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": []}}}, "response_format",
     "schema must be a JSON Schema object"),
    ({"n": 3}, "n", "several choices"),
    ({"top_p": 1.5}, "top_p", "top_p must be a number from 0 to 1"),
    ({"presence_penalty": "high"}, "presence_penalty", "presence_penalty must be a number from -2 to 2"),
    ({"seed": 2**70}, "seed", "seed must be an integer"),
    ({"reasoning_effort": "maximum"}, "reasoning_effort", "reasoning_effort must be one of none, minimal, low"),
    ({"logit_bias": {"hello": 5}}, "logit_bias", "logit_bias must map up to 1,024 token ids"),
    ({"logit_bias": {"50256": -101}}, "logit_bias", "to numbers from -100 to 100"),
    ({"model": "gemini/gemini-2.5-flash", "logit_bias": {"50256": -100}}, "provider", "gemini takes no token bias"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array of up to 4"),
    ({"stop": [""]}, "stop", "non-empty string"),
    ({"stop": "end\x00"}, "stop", "U+0000"),
    ({"logprobs": True, "top_logprobs": 2}, "logprobs", "log probabilities"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "modalities", "audio output"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is in this image?"},
                                                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]},
     "messages", "messages[0].content holds a 'image_url' part"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]}, "messages", "a text part whose text is not a string"),
    ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages", "messages[0].role ['user'] is not one of"),
    ({"max_completion_tokens": 0}, "max_completion_tokens", "max_completion_tokens must be an integer"),
    ({"max_completion_tokens": None, "max_tokens": 0}, "max_tokens", "max_tokens must be an integer"),
    ({"stream": True, "stream_options": {"include_usage": "false"}}, "stream_options", "include_usage must be a boolean"),
], ids=["schema-without-name", "regex-format", "schema-not-object", "n", "top_p-over-1", "penalty-text", "seed-too-big", "unknown-effort", "bias-word", "bias-over-100", "bias-to-gemini",
        "five-stops", "empty-stop", "nul-stop", "logprobs", "audio", "image-part", "text-part-null", "role-list",
        "max_completion_tokens", "max_tokens-beside-null", "include_usage-string"])
def test_what_the_gateway_cannot_honour_is_a_400_not_silently_ignored(asgi_server, token_a, fakes, extra, param, says):
    """Each was answered 200 with one plain-text choice (the field dropped, the image never sent),
    or a 500 for the malformed ones; a client must not take that for what it asked."""
    body = {"model": "openrouter/meta/llama", "messages": [_USER], **extra}
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token_a}"}, timeout=20)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"], error
    assert not fakes["openrouter"].requests


_PROSE = "Thought: I should look it up.\nObservation: it is sunny.\nThought: done."


@pytest.mark.parametrize("provider", ["openai", "gemini", "openrouter", "perplexity"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_stop_sequences_end_the_answer_before_them_on_every_provider(sdk, fakes, provider, stream):
    """LangChain's ReAct agents send `stop: ["\nObservation:"]`; the gateway refused it (400).
    It now reaches the providers that take it, and Perplexity (which takes none) is cut by DAC."""
    fakes[provider].behaviour = Behaviour(text=_PROSE)
    model = {"openrouter": "openrouter/meta/llama", "perplexity": "perplexity/sonar"}.get(provider, f"{provider}/m")
    kwargs = {"model": model, "messages": [_USER], "stop": ["\nObservation:", "STOP"]}
    if stream:
        chunks = list(sdk.chat.completions.create(**kwargs, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    else:
        choice = sdk.chat.completions.create(**kwargs).choices[0]
        text, finish = choice.message.content, choice.finish_reason
    assert (text, finish) == ("Thought: I should look it up.", "stop")
    sent = fakes[provider].requests[0].json
    if provider == "gemini":
        assert sent["generationConfig"]["stopSequences"] == ["\nObservation:", "STOP"]
    elif provider == "perplexity":
        assert "stop" not in sent
    else:
        assert sent["stop"] == ["\nObservation:", "STOP"]


def test_a_providers_retry_after_is_passed_on(asgi_server, token_a, fakes):
    """A provider's 429 became a 503 without its Retry-After: clients retried at once, or never."""
    fakes["openrouter"].behaviour = Behaviour(error="rate_limited", retry_after=7)
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json={"model": "openrouter/meta/llama", "messages": [_USER]},
                          headers={"Authorization": f"Bearer {token_a}"}, timeout=20)
    assert response.status_code == 503 and response.json()["error"]["code"] == "rate_limited"
    assert response.headers["Retry-After"] == "7"


def test_sampling_fields_are_passed_on_not_dropped(sdk, fakes):
    """top_p, seed and the penalties were accepted and dropped: the provider used its defaults."""
    fakes["openrouter"].behaviour = Behaviour(text="fine")
    sdk.chat.completions.create(model="openrouter/meta/llama", messages=[_USER], top_p=0.9, seed=42, presence_penalty=0.5,
                                frequency_penalty=0.25)
    sent = fakes["openrouter"].requests[0].json
    assert (sent["top_p"], sent["seed"], sent["presence_penalty"], sent["frequency_penalty"]) == (0.9, 42, 0.5, 0.25)


def test_reasoning_effort_is_passed_on_in_each_providers_terms(sdk, fakes):
    """reasoning_effort was accepted and dropped: a reasoning model thought as long as it liked."""
    fakes["openrouter"].behaviour = Behaviour(text="fine")
    sdk.chat.completions.create(model="openrouter/openai/gpt-5", messages=[_USER], reasoning_effort="low")
    assert fakes["openrouter"].requests[0].json["reasoning"] == {"effort": "low"}
    fakes["openai"].behaviour = Behaviour(text="fine")
    sdk.chat.completions.create(model="openai/o4-mini", messages=[_USER], reasoning_effort="high")
    assert fakes["openai"].requests[0].json["reasoning_effort"] == "high"


def test_logit_bias_is_passed_on_and_model_auto_passes_over_the_providers_without_it(sdk, fakes):
    """logit_bias was accepted and dropped; Perplexity and Gemini have no such setting."""
    fakes["openrouter"].behaviour = Behaviour(text="fine")
    sdk.chat.completions.create(model="openrouter/meta/llama", messages=[_USER], logit_bias={"50256": -100, "13": 5.5})
    assert fakes["openrouter"].requests[0].json["logit_bias"] == {"50256": -100, "13": 5.5}
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "latest news about the weather in Lisbon today"}], logit_bias={"13": 1})
    assert raw.headers["x-dac-provider"] not in ("perplexity", "gemini") and not fakes["perplexity"].requests


def test_a_stop_string_is_one_sequence(sdk, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="one. two. three.")
    completion = sdk.chat.completions.create(model="openrouter/meta/llama", messages=[_USER], stop=" two")
    assert completion.choices[0].message.content == "one."
    assert fakes["openrouter"].requests[0].json["stop"] == [" two"]


_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
           "required": ["city", "sunny"], "additionalProperties": False}


@pytest.mark.parametrize("provider, wire", [
    ("openai", {"response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": _SCHEMA, "strict": True}}}),
    ("openrouter", {"response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": _SCHEMA, "strict": True}}}),
    ("perplexity", {"response_format": {"type": "json_schema", "json_schema": {"schema": _SCHEMA}}}),
    ("gemini", {"generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": _SCHEMA}}),
])
def test_a_json_schema_reaches_each_provider_in_its_own_terms(sdk, fakes, provider, wire):
    """response_format was refused (400); each provider now gets it in its own shape (Perplexity
    takes the schema alone, Gemini a MIME type and a JSON schema), and the JSON comes back."""
    fakes[provider].behaviour = Behaviour(text='{"city": "Lisbon", "sunny": true}')
    model = {"openrouter": "openrouter/meta/llama", "perplexity": "perplexity/sonar"}.get(provider, f"{provider}/m")
    completion = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "weather in lisbon"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": _SCHEMA, "strict": True}})
    assert json.loads(completion.choices[0].message.content) == {"city": "Lisbon", "sunny": True}
    sent = fakes[provider].requests[0].json
    for field, value in wire.items():
        assert {k: sent[field][k] for k in value} == value if field == "generationConfig" else sent[field] == value


@pytest.mark.parametrize("provider, wire", [
    ("openai", {"type": "json_object"}),
    ("perplexity", {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}),
])
def test_json_object_is_asked_for_in_each_providers_terms(sdk, fakes, provider, wire):
    fakes[provider].behaviour = Behaviour(text='{"ok": true}')
    completion = sdk.chat.completions.create(model=f"{provider}/m" if provider == "openai" else "perplexity/sonar",
                                             messages=[{"role": "user", "content": "answer in JSON"}],
                                             response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content) == {"ok": True}
    assert fakes[provider].requests[0].json["response_format"] == wire


def test_model_auto_routes_a_json_request_as_structured_output(sdk, fakes):
    """The structured rule (OpenAI) takes a request for JSON whatever its words say."""
    fakes["openai"].behaviour = Behaviour(text='{"greeting": "hi"}')
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "say hi to the team"}], response_format={"type": "json_object"})
    assert raw.headers["x-dac-provider"] == "openai" and raw.headers["x-dac-rule"] == "structured"
    assert json.loads(raw.parse().choices[0].message.content) == {"greeting": "hi"}
    plain = sdk.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "say hi to the team"}])
    assert plain.headers["x-dac-rule"] != "structured"


def test_fields_at_their_defaults_are_accepted(sdk, fakes):
    fakes["openrouter"].behaviour = Behaviour(text="fine")
    completion = sdk.chat.completions.create(
        model="openrouter/meta/llama", messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        n=1, tools=[], response_format={"type": "text"}, stop=None, logprobs=False, tool_choice="none",
        stream_options=None,
    )
    assert completion.choices[0].message.content == "fine"
    offered = sdk.chat.completions.create(model="openrouter/meta/llama", messages=[{"role": "user", "content": "hello"}],
                                          tools=[_TOOL], tool_choice="none")  # offered, not to be called
    assert offered.choices[0].message.content == "fine"
    streamed = sdk.chat.completions.create(model="openrouter/meta/llama", messages=[{"role": "user", "content": "hello"}],
                                           stream=True, stream_options={"include_usage": None})
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == "fine"


def test_bodies_too_large_or_too_deep_get_the_gateways_json_error(asgi_server, token_a, fakes):
    """Past Django's own limit (2.5 MB) the answer was its HTML 'Bad Request (400)'; a body nested
    thousands deep was a 500 (RecursionError)."""
    headers = {"Authorization": f"Bearer {token_a}", "Content-Type": "application/json"}
    big = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * 3_000_000}]}).encode()
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", content=big, headers=headers, timeout=30)
    assert response.status_code == 413 and "larger than 2,000,000 bytes" in response.json()["error"]["message"]
    deep = b'{"model": "auto", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", content=deep, headers=headers, timeout=30)
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]
    assert not fakes["openrouter"].requests


@pytest.mark.parametrize("value", ["\u00b2".encode("latin-1"), b"1" * 5000], ids=["superscript-two", "5000-digits"])
def test_a_thread_id_that_is_not_one_is_a_400(asgi_server, token_a, value):
    """'²' passes str.isdigit() and then failed int(); 5,000 digits passed the int conversion limit: 500s."""
    headers = [(b"Authorization", f"Bearer {token_a}".encode()), (b"X-DAC-Thread-Id", value)]
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json={"model": "auto", "messages": [_USER]}, headers=headers, timeout=20)
    assert response.status_code == 400 and response.json()["error"]["param"] == "X-DAC-Thread-Id"


def test_with_a_thread_only_the_last_message_is_read_so_a_whole_conversation_may_be_sent(sdk, fakes, org_a):
    """OpenAI clients send the whole conversation each time: earlier messages (an image part among
    them) are the thread's business, not refused."""
    fakes["openrouter"].behaviour = Behaviour(text="noted")
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": "and now?"},
    ]
    completion = sdk.chat.completions.create(model="openrouter/meta/llama", messages=conversation, extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    assert completion.choices[0].message.content == "noted"
    with tenant_context(org_a):
        assert list(Message.objects.filter(thread=thread).order_by("seq").values_list("role", "content")) == [("user", "and now?"), ("assistant", "noted")]


def test_with_a_thread_the_last_message_must_be_the_users_new_one(sdk, fakes, org_a):
    """An assistant-last conversation sent the last user message again and saved it twice."""
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="auto", messages=[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}],
                                    extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    assert "the last message must be the user's new message" in refused.value.message
    with tenant_context(org_a):
        assert not Message.objects.filter(thread=thread).exists()
    assert not fakes["openrouter"].requests and not fakes["openai"].requests


def test_after_a_fallback_the_rate_limit_headers_are_the_answering_providers(sdk, fakes, org_a):
    """They described the provider that failed (its limit, and a request since given back)."""
    from audit.services import Actor
    from providers.services.limits import quota_limit_set

    quota_limit_set(org_id=org_a.id, provider="openai", requests_per_day=50, tokens_per_day=None, actor=Actor.system("test"))
    fakes["openai"].behaviour = Behaviour(error="auth")
    raw = sdk.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "write a python function that returns nothing"}]
    )
    assert raw.headers["x-dac-provider"] != "openai"
    assert raw.headers["x-ratelimit-limit-requests"] == "1000" and raw.headers["x-ratelimit-remaining-requests"] == "999"


@pytest.mark.parametrize("in_thread", [False, True], ids=["no-thread", "thread"])
def test_a_client_that_leaves_while_its_call_is_prepared_leaves_nothing_behind(asgi_server, token_a, fakes, org_a, monkeypatch, in_thread):
    """The preparing thread reserved quota (and with a thread saved a 'streaming' answer) after the
    client had gone: nothing started the answer, so the reservation was never settled. Now the
    answer runs its course: without a thread it ends before the provider, its quota given back;
    with one it is produced and saved, as when a client leaves mid-answer."""
    from threads.services import send

    prepare, prepared = send._prepare, threading.Event()

    def slow_prepare(*args):
        time.sleep(0.6)  # the client (0.3 s) leaves meanwhile
        try:
            return prepare(*args)
        finally:
            prepared.set()

    monkeypatch.setattr(send, "_prepare", slow_prepare)
    fakes["openrouter"].behaviour = Behaviour(text="kept anyway")
    headers = {"Authorization": f"Bearer {token_a}"}
    if in_thread:
        with tenant_context(org_a):
            thread = Thread.objects.create(org=org_a)
        headers["X-DAC-Thread-Id"] = str(thread.pk)
    body = {"model": "openrouter/meta/llama", "messages": [{"role": "user", "content": "hello"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers=headers, timeout=0.3)
    assert prepared.wait(10)  # it reserved (and saved the thread's rows) after the client had left
    if in_thread:
        answer = settled_answer(org_a, thread)
        assert (answer.status, answer.content) == ("complete", "kept anyway")
        assert quota_usage(org_id=org_a.id, provider="openrouter").requests_used == 1 and len(fakes["openrouter"].requests) == 1
    else:
        deadline = time.monotonic() + 10
        while (counted := quota_usage(org_id=org_a.id, provider="openrouter")).requests_used and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (counted.requests_used, counted.tokens_used) == (0, 0) and not fakes["openrouter"].requests


def test_a_client_that_leaves_while_redis_counts_its_reservation_leaves_nothing_counted(asgi_server, sdk, token_a, fakes, org_a, monkeypatch):
    """The usual gateway call reserves on the event loop; a client gone while Redis's reply was on
    its way cancelled the reply's reader, and the request and ~1,000 tokens Redis had counted
    stayed counted for the day."""
    import asyncio

    from providers.services import quota

    fakes["openrouter"].behaviour = Behaviour(text="warm")
    sdk.chat.completions.create(model="openrouter/meta/llama", messages=[_USER])  # keys and routing cached: the on-loop path
    before = quota_usage(org_id=org_a.id, provider="openrouter")
    reserve, reserved = quota.quota_reserve_async, threading.Event()

    async def slow_reply(**kwargs):
        reservation = await reserve(**kwargs)  # counted in Redis
        reserved.set()
        await asyncio.sleep(0.6)  # its reply still on the way when the client (0.3 s) leaves
        return reservation

    monkeypatch.setattr(quota, "quota_reserve_async", slow_reply)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{asgi_server.url}/v1/chat/completions", json={"model": "openrouter/meta/llama", "messages": [_USER]},
                   headers={"Authorization": f"Bearer {token_a}"}, timeout=0.3)
    assert reserved.wait(5)
    deadline = time.monotonic() + 10
    while (after := quota_usage(org_id=org_a.id, provider="openrouter")).requests_used > before.requests_used and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (after.requests_used, after.tokens_used) == (before.requests_used, before.tokens_used)
    assert len(fakes["openrouter"].requests) == 1


def test_a_provider_error_message_utf8_or_postgresql_cannot_carry_is_saved_with_the_failed_answer(sdk, fakes, org_a):
    """Its text goes into the failed answer's message: a lone surrogate there left it 'streaming'."""
    fakes["openrouter"].behaviour = Behaviour(error="bad_request", message="bad \ud800 input \x00")
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="openrouter/meta/llama", messages=[{"role": "user", "content": "hi"}],
                                    extra_headers={"X-DAC-Thread-Id": str(thread.pk)})
    answer = settled_answer(org_a, thread)
    assert answer.status == "failed" and "bad \ufffd input \ufffd" in answer.error_message, answer.error_message


@pytest.mark.parametrize("in_thread", [False, True], ids=["no-thread", "thread"])
@pytest.mark.parametrize("model", ["openrouter/llama\\u0000x", "openrouter/llama\\ud800"], ids=["nul", "half-surrogate"])
def test_a_model_name_no_provider_can_be_sent_is_a_400(asgi_server, token_a, fakes, org_a, model, in_thread):
    """The client's model name was the one way left in for such text: a 502 or 500, with a thread
    '503 database unavailable' (the answer's model could not be saved)."""
    headers = {"Authorization": f"Bearer {token_a}", "Content-Type": "application/json"}
    if in_thread:
        with tenant_context(org_a):
            thread = Thread.objects.create(org=org_a)
        headers["X-DAC-Thread-Id"] = str(thread.pk)
    body = '{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % model
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", content=body.encode(), headers=headers, timeout=20)
    assert response.status_code == 400 and response.json()["error"]["param"] == "model", response.text
    assert not fakes["openrouter"].requests
