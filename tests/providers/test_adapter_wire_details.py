"""What each adapter sends, and the dialect details each provider's answers need."""

from __future__ import annotations

import asyncio
import email.utils
import pickle
import threading
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from multidict import CIMultiDict

from providers.adapters import (
    PROVIDER_NAMES,
    ProviderError,
    aclose_shared_client,
    get_adapter,
    shared_client,
)
from providers.adapters.http_adapter import retry_after_from_headers
from providers.adapters.sse import SSEDecoder
from tests.fakes import Behaviour, FakeProvider
from tests.fakes.helpers import KEY, MESSAGES, collect, deltas, adapter_for


@pytest_asyncio.fixture(autouse=True)
async def close_shared_client():
    yield
    await aclose_shared_client()



# ---- construction -------------------------------------------------------------------------------

def test_every_provider_name_builds_an_adapter_with_that_name_and_its_default_model():
    defaults = {"openai": "gpt-4o-mini", "perplexity": "sonar", "gemini": "gemini-2.5-flash",
                "openrouter": "openrouter/auto", "openai_compatible": None, "demo": "demo-1"}
    for name in PROVIDER_NAMES:
        base_url = "http://127.0.0.1:1/v1" if name == "openai_compatible" else None
        adapter = get_adapter(name, api_key=KEY, base_url=base_url)
        assert adapter.name == name
        assert adapter.default_model == defaults[name]


def test_default_base_urls_point_at_the_real_providers():
    assert get_adapter("openai", api_key=KEY).base_url == "https://api.openai.com/v1"
    assert get_adapter("perplexity", api_key=KEY).base_url == "https://api.perplexity.ai"
    assert get_adapter("gemini", api_key=KEY).base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert get_adapter("openrouter", api_key=KEY).base_url == "https://openrouter.ai/api/v1"


def test_openai_compatible_without_a_base_url_is_refused():
    with pytest.raises(ValueError, match="base_url"):
        get_adapter("openai_compatible", api_key=KEY)


def test_an_unknown_provider_name_is_refused():
    with pytest.raises(ValueError, match="unknown provider"):
        get_adapter("anthropic-ish", api_key=KEY)


def test_provider_error_refuses_a_category_outside_the_seven():
    with pytest.raises(ValueError, match="category"):
        ProviderError("teapot", 418, "short and stout")


# ---- request shapes -----------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "openai_compatible", "openrouter", "perplexity"])
async def test_chat_completion_adapters_post_the_conversation_with_a_bearer_key(provider):
    max_field = {"openai": "max_completion_tokens"}.get(provider, "max_tokens")
    with FakeProvider(provider) as fake:
        await adapter_for(fake).complete(messages=MESSAGES, model="m-1", max_tokens=64, temperature=0.2)
        await collect(adapter_for(fake), model="m-1")
        plain, streamed = fake.requests

    path = "/chat/completions" if provider == "perplexity" else "/v1/chat/completions"
    assert (plain.method, plain.path) == ("POST", path)
    assert plain.headers["authorization"] == f"Bearer {KEY}"
    assert plain.headers["content-type"].startswith("application/json")
    assert plain.json["model"] == "m-1"
    assert plain.json["messages"] == MESSAGES
    assert plain.json[max_field] == 64 and plain.json["temperature"] == 0.2
    assert "stream" not in plain.json
    assert streamed.json["stream"] is True
    assert ("stream_options" in streamed.json) == (provider in ("openai", "openai_compatible"))


@pytest.mark.asyncio
async def test_gemini_sends_roles_user_and_model_with_the_system_text_apart():
    with FakeProvider("gemini") as fake:
        await adapter_for(fake).complete(messages=MESSAGES, model="gemini-2.5-flash", max_tokens=64, temperature=0.2)
        await collect(adapter_for(fake), model="models/gemini-2.5-flash")
        plain, streamed = fake.requests

    assert plain.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert plain.headers["x-goog-api-key"] == KEY
    assert "authorization" not in plain.headers and "key" not in plain.query
    assert plain.json["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [(c["role"], c["parts"][0]["text"]) for c in plain.json["contents"]] == [
        ("user", "What is DAC?"), ("model", "A gateway."), ("user", "Tell me more about it.")]
    assert plain.json["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.2}
    assert streamed.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert streamed.query == {"alt": "sse"}


@pytest.mark.asyncio
async def test_gemini_merges_consecutive_turns_of_one_role_because_turns_must_alternate():
    messages = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    with FakeProvider("gemini") as fake:
        await adapter_for(fake).complete(messages=messages, model="gemini-2.5-flash")

    assert fake.last_request.json["contents"] == [{"role": "user", "parts": [{"text": "one"}, {"text": "two"}]}]


@pytest.mark.asyncio
async def test_openai_compatible_without_a_key_sends_no_authorization_header():
    with FakeProvider("openai_compatible") as fake:
        await adapter_for(fake, key=None).complete(messages=MESSAGES, model="llama3.2")

    assert "authorization" not in fake.last_request.headers


@pytest.mark.asyncio
async def test_openrouter_sends_its_attribution_header():
    with FakeProvider("openrouter") as fake:
        await adapter_for(fake).complete(messages=MESSAGES, model="openrouter/auto")

    assert fake.last_request.headers["x-openrouter-title"] == "DAC"


# ---- dialect details ----------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_perplexity_citations_come_back_as_urls(method):
    urls = ["https://a.example/1", "https://b.example/2"]
    with FakeProvider("perplexity", behaviour=Behaviour(text="Cited [1][2].", citations=urls)) as fake:
        adapter = adapter_for(fake)
        if method == "complete":
            result = await adapter.complete(messages=MESSAGES, model="sonar")
        else:
            events, _, _ = await collect(adapter, model="sonar")
            result = events[-1].result

    assert result.citations == urls
    assert result.cost_usd is not None and result.cost_usd > 0


@pytest.mark.asyncio
async def test_perplexity_stream_usage_is_the_last_running_total_not_a_sum():
    with FakeProvider("perplexity", behaviour=Behaviour(text="a b c d", input_tokens=10, output_tokens=4)) as fake:
        events, _, _ = await collect(adapter_for(fake), model="sonar")

    assert (events[-1].result.input_tokens, events[-1].result.output_tokens) == (10, 4)


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_gemini_counts_thoughts_as_output_so_input_plus_output_is_the_total(method):
    behaviour = Behaviour(text="Short answer here.", input_tokens=9, output_tokens=6, thoughts_tokens=30)
    with FakeProvider("gemini", behaviour=behaviour) as fake:
        if method == "complete":
            result = await adapter_for(fake).complete(messages=MESSAGES, model="gemini-2.5-flash")
        else:
            events, _, _ = await collect(adapter_for(fake), model="gemini-2.5-flash")
            result = events[-1].result

    assert (result.input_tokens, result.output_tokens, result.total_tokens) == (9, 36, 45)


@pytest.mark.asyncio
async def test_gemini_safety_finish_with_text_is_a_result_flagged_content_filter():
    with FakeProvider("gemini", behaviour=Behaviour(text="Partial answer", finish_reason="content_filter")) as fake:
        result = await adapter_for(fake).complete(messages=MESSAGES, model="gemini-2.5-flash")

    assert (result.text, result.finish_reason) == ("Partial answer", "content_filter")


@pytest.mark.asyncio
async def test_openai_tool_calls_finish_without_text_is_not_an_error():
    with FakeProvider("openai", behaviour=Behaviour(text="", finish_reason="tool_calls")) as fake:
        result = await adapter_for(fake).complete(messages=MESSAGES, model="gpt-4o-mini")

    assert (result.text, result.finish_reason) == ("", "tool_calls")


@pytest.mark.asyncio
async def test_openrouter_503_availability_error_takes_retry_after_from_its_body_or_header():
    behaviour = Behaviour(error="unavailable", status=503, retry_after=5)
    with FakeProvider("openrouter", behaviour=behaviour) as fake, pytest.raises(ProviderError) as caught:
            await adapter_for(fake).complete(messages=MESSAGES, model="openai/gpt-4o-mini")

    assert (caught.value.category, caught.value.status, caught.value.retry_after) == ("unavailable", 503, 5.0)


@pytest.mark.asyncio
async def test_gemini_daily_quota_is_quota_exceeded_and_per_minute_is_rate_limited():
    with FakeProvider("gemini") as fake:
        fake.enqueue(Behaviour(error="quota_exceeded", retry_after=34.4), Behaviour(error="rate_limited"))
        errors = []
        for _ in range(2):
            with pytest.raises(ProviderError) as caught:
                await adapter_for(fake).complete(messages=MESSAGES, model="gemini-2.5-flash")
            errors.append(caught.value)

    assert [(e.category, e.status, e.retry_after) for e in errors] == [
        ("quota_exceeded", 429, 34.4), ("rate_limited", 429, None)]


@pytest.mark.asyncio
async def test_a_server_that_ignores_the_stream_flag_still_streams_its_answer_as_one_delta():
    # The fake streams only when asked; the adapter's JSON fallback is what is being checked.
    with FakeProvider("openai_compatible") as fake:
        adapter = adapter_for(fake)
        adapter._body = lambda *args, **kwargs: {"model": "m", "messages": MESSAGES}  # drop stream: true
        events, _, error = await collect(adapter)

    assert error is None
    assert deltas(events) == events[-1].result.text != ""


# ---- check_key and models -----------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "openai_compatible", "openrouter", "perplexity", "gemini"])
async def test_check_key_accepts_the_right_key_and_reports_auth_for_a_wrong_one(provider):
    with FakeProvider(provider, api_key=KEY) as fake:
        assert await adapter_for(fake).check_key(timeout=5) is None
        with pytest.raises(ProviderError) as caught:
            await adapter_for(fake, key="sk-wrong-key-0000000000").check_key(timeout=5)
        requests = fake.requests

    assert caught.value.category == "auth"
    if provider == "perplexity":  # no models endpoint: a one-token answer from sonar
        assert requests[0].path == "/chat/completions"
        assert (requests[0].json["model"], requests[0].json["max_tokens"]) == ("sonar", 1)
    else:
        assert requests[0].method == "GET" and requests[0].path.endswith("/models")


@pytest.mark.asyncio
async def test_list_models_returns_the_provider_model_ids():
    with FakeProvider("gemini") as gemini, FakeProvider("openai") as openai:
        assert "gemini-2.5-flash" in await adapter_for(gemini).list_models()
        assert "gpt-4o-mini" in await adapter_for(openai).list_models()


# ---- the shared client --------------------------------------------------------------------------

def test_each_event_loop_gets_its_own_shared_client_and_reuses_it():
    async def two_clients():
        return shared_client(), shared_client()

    first_a, first_b = asyncio.run(two_clients())
    second_a, _ = asyncio.run(two_clients())

    assert first_a is first_b
    assert second_a is not first_a


def test_loops_in_other_threads_get_their_own_client():
    seen = []

    def worker():
        async def grab():
            seen.append(shared_client())
        asyncio.run(grab())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(client) for client in seen}) == 3


# ---- SSE framing --------------------------------------------------------------------------------

@pytest.mark.parametrize("separator", ["\n", "\r\n", "\r"])
def test_sse_decoder_handles_any_line_ending_split_anywhere(separator):
    stream = separator.join([": keep-alive", "", 'data: {"a": 1}', "", "event: x", "data: line1",
                             "data: line2", "", "data: [DONE]", "", ""])
    for size in (1, 2, 3, 7, len(stream)):
        decoder, out = SSEDecoder(), []
        for i in range(0, len(stream), size):
            out += decoder.feed(stream[i:i + size])
        out += decoder.flush()
        assert out == ['{"a": 1}', "line1\nline2", "[DONE]"], size


def test_sse_decoder_delivers_an_unterminated_last_event_at_flush():
    decoder = SSEDecoder()
    assert decoder.feed('data: {"x": 1}') == []
    assert decoder.flush() == ['{"x": 1}']


# ---- error plumbing -----------------------------------------------------------------------------

def test_retry_after_accepts_seconds_milliseconds_and_http_dates():
    future = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert retry_after_from_headers(CIMultiDict({"Retry-After": "12"})) == 12.0
    assert retry_after_from_headers(CIMultiDict({"retry-after-ms": "1500"})) == 1.5
    assert 25 <= retry_after_from_headers(CIMultiDict({"Retry-After": future})) <= 30
    assert retry_after_from_headers(CIMultiDict({"Retry-After": "soon"})) is None
    assert retry_after_from_headers(CIMultiDict({})) is None


def test_provider_errors_survive_pickling_with_their_fields():
    error = ProviderError("rate_limited", 429, "slow down", 3.0, provider="openai")

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.category, copy.status, copy.message, copy.retry_after, copy.provider) == (
        "rate_limited", 429, "slow down", 3.0, "openai")


def test_key_shaped_strings_are_redacted_from_any_provider_error():
    error = ProviderError("auth", 401, "bad key sk-proj-abcdefghijklmnop and AIzaSyA1234567890abcdef")

    assert "sk-proj-abcdefghijklmnop" not in str(error)
    assert "AIzaSyA1234567890abcdef" not in repr(error)


@pytest.mark.asyncio
async def test_a_caller_that_stops_reading_early_can_close_the_stream_and_call_again():
    with FakeProvider("openai", behaviour=Behaviour(text="a b c d e f", chunk_gap=0.05)) as fake:
        adapter = adapter_for(fake)
        async with aclosing(adapter.stream(messages=MESSAGES, model="m")) as events:
            async for event in events:
                assert event.delta == "a "
                break
        result = await adapter.complete(messages=MESSAGES, model="m", timeout=5)

    assert result.text == "a b c d e f"
