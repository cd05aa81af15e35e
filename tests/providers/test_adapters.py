"""The adapter contract, checked for every network adapter against a fake speaking its wire format.

No database: the adapters run without Django settings too (see test_provider_client.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import pytest_asyncio

from providers.adapters import (
    ERROR_CATEGORIES,
    ProviderError,
    aclose_shared_client,
    get_adapter,
)
from tests.fakes import Behaviour, FakeProvider
from tests.fakes.helpers import HTTP_ADAPTERS, KEY, MESSAGES, collect, deltas, adapter_for

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def close_shared_client():
    yield
    await aclose_shared_client()


@pytest.fixture(params=HTTP_ADAPTERS)
def fake(request):
    with FakeProvider(request.param) as server:
        yield server


# ---- success ------------------------------------------------------------------------------------

async def test_complete_returns_the_answer_with_usage_model_and_latency(fake):
    fake.behaviour = Behaviour(text="The answer is 42.", input_tokens=11, output_tokens=5, model="served-model")

    result = await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert result.text == "The answer is 42."
    assert result.model == "served-model"
    assert (result.input_tokens, result.output_tokens, result.total_tokens) == (11, 5, 16)
    assert result.finish_reason == "stop"
    assert result.provider == fake.provider
    assert result.latency_ms > 0
    assert len(fake.requests) == 1


async def test_complete_reports_a_length_cut_as_finish_reason_length(fake):
    fake.behaviour = Behaviour(text="Cut sho", finish_reason="length")

    result = await adapter_for(fake).complete(messages=MESSAGES, model="test-model", max_tokens=2)

    assert (result.text, result.finish_reason) == ("Cut sho", "length")


async def test_stream_yields_deltas_as_they_arrive_rather_than_at_the_end(fake):
    fake.behaviour = Behaviour(text="one two three four", chunk_gap=0.15)
    started = time.monotonic()

    events, arrived, error = await collect(adapter_for(fake))

    assert error is None
    assert [e.delta for e in events] == ["one ", "two ", "three ", "four", ""]
    # The first piece must reach us long before the last one was even sent (3 gaps later).
    assert arrived[0] - started < 0.4
    assert arrived[-1] - arrived[0] >= 0.3


async def test_only_the_final_stream_event_carries_the_result_and_it_joins_the_deltas(fake):
    fake.behaviour = Behaviour(text="Streaming works fine.", chunks=3, input_tokens=7, output_tokens=3)

    events, _, error = await collect(adapter_for(fake))

    assert error is None
    assert all(event.result is None for event in events[:-1])
    result = events[-1].result
    assert result is not None
    assert result.text == deltas(events) == "Streaming works fine."
    assert (result.input_tokens, result.output_tokens) == (7, 3)
    assert result.provider == fake.provider
    assert result.first_token_ms is not None and result.first_token_ms <= result.latency_ms


async def test_stream_without_done_sentinel_still_finishes(fake):
    fake.behaviour = Behaviour(text="No sentinel here", done_sentinel=False)

    events, _, error = await collect(adapter_for(fake))

    assert error is None
    assert events[-1].result.text == "No sentinel here"


# ---- errors -------------------------------------------------------------------------------------

# Every category each provider has a real (documented) way of answering with.
ERROR_CASES = [
    (provider, category)
    for provider in HTTP_ADAPTERS
    for category in ERROR_CATEGORIES
    if not (category == "timeout" and provider in ("openai", "openai_compatible", "perplexity"))
]


@pytest.mark.parametrize(("provider", "category"), ERROR_CASES)
@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_each_provider_error_maps_to_its_category(provider, category, method):
    with FakeProvider(provider, behaviour=Behaviour(error=category)) as fake:
        adapter = adapter_for(fake)
        if method == "complete":
            with pytest.raises(ProviderError) as caught:
                await adapter.complete(messages=MESSAGES, model="test-model")
            error = caught.value
        else:
            events, _, error = await collect(adapter)
            assert deltas(events) == ""

    assert isinstance(error, ProviderError)
    assert error.category == category
    assert error.provider == provider
    assert error.status is not None


@pytest.mark.parametrize(
    ("status", "category"),
    [(400, "bad_request"), (404, "bad_request"), (422, "bad_request"), (500, "unavailable"), (503, "unavailable")],
)
async def test_http_status_alone_decides_the_category_when_the_body_is_generic(fake, status, category):
    error_for = "unavailable" if status >= 500 else "bad_request"
    fake.behaviour = Behaviour(error=error_for, status=status)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert (caught.value.category, caught.value.status) == (category, status)


async def test_retry_after_is_read_from_the_providers_hint(fake):
    fake.behaviour = Behaviour(error="rate_limited", retry_after=7)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert caught.value.category == "rate_limited"
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


async def test_errors_without_a_retry_hint_have_no_retry_after(fake):
    fake.behaviour = Behaviour(error="bad_request")

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert caught.value.retry_after is None
    assert not caught.value.retryable


@pytest.mark.parametrize("category", ["rate_limited", "unavailable", "bad_request"])
async def test_midstream_error_raises_after_yielding_the_text_before_it(fake, category):
    fake.behaviour = Behaviour(text="alpha beta gamma delta", midstream_error=category, error_after=2)

    events, _, error = await collect(adapter_for(fake))

    assert deltas(events) == "alpha beta "
    assert all(event.result is None for event in events)
    assert isinstance(error, ProviderError)
    # OpenAI's in-stream errors have no numeric code; only the server_error type says "unavailable".
    if fake.provider in ("openai", "openai_compatible"):
        assert error.category in (category, "unavailable")
    else:
        assert error.category == category


async def test_html_error_pages_are_read_without_json_decoding(fake):
    fake.behaviour = Behaviour(error="unavailable", html=True, status=502)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert (caught.value.category, caught.value.status) == ("unavailable", 502)
    assert "502" in caught.value.message


# ---- transport ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_a_provider_slower_than_the_timeout_raises_timeout(fake, method):
    fake.behaviour = Behaviour(delay=5)
    adapter = adapter_for(fake)
    started = time.monotonic()

    if method == "complete":
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(messages=MESSAGES, model="test-model", timeout=0.3)
        error = caught.value
    else:
        _, _, error = await collect(adapter, timeout=0.3)

    assert isinstance(error, ProviderError) and error.category == "timeout"
    assert error.status is None
    assert time.monotonic() - started < 2


async def test_a_stream_that_hangs_after_its_first_token_raises_timeout_after_yielding_it(fake):
    fake.behaviour = Behaviour(text="first second third", stall_after_first=10)

    events, _, error = await collect(adapter_for(fake), timeout=0.3)

    assert deltas(events) == "first "
    assert isinstance(error, ProviderError) and error.category == "timeout"


async def test_a_slow_but_steady_stream_is_not_cut_by_the_timeout(fake):
    fake.behaviour = Behaviour(text="a b c d e f g h", chunk_gap=0.1)  # 0.7 s in all

    events, _, error = await collect(adapter_for(fake), timeout=0.5)

    assert error is None
    assert events[-1].result.text == "a b c d e f g h"


async def test_a_connection_dropped_mid_stream_is_unavailable(fake):
    fake.behaviour = Behaviour(text="one two three four", drop_after=2)

    events, _, error = await collect(adapter_for(fake))

    assert deltas(events) == "one two "
    assert isinstance(error, ProviderError) and error.category == "unavailable"


async def test_a_connection_dropped_mid_body_is_unavailable(fake):
    fake.behaviour = Behaviour(drop_after=0)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert caught.value.category == "unavailable"


async def test_a_server_that_hangs_up_without_answering_is_unavailable(fake):
    fake.behaviour = Behaviour(disconnect=True)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")

    assert caught.value.category == "unavailable"


@pytest.mark.parametrize("provider", HTTP_ADAPTERS)
async def test_a_closed_port_is_unavailable(provider):
    with FakeProvider(provider) as fake:
        base_url = fake.base_url  # the port is free again once the fake has stopped
    adapter = get_adapter(provider, api_key=KEY, base_url=base_url)

    with pytest.raises(ProviderError) as caught:
        await adapter.complete(messages=MESSAGES, model="test-model")
    _, _, stream_error = await collect(adapter)

    assert caught.value.category == "unavailable"
    assert isinstance(stream_error, ProviderError) and stream_error.category == "unavailable"


@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_a_garbage_body_is_unavailable_not_a_crash(fake, method):
    fake.behaviour = Behaviour(garbage=True)
    adapter = adapter_for(fake)

    if method == "complete":
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(messages=MESSAGES, model="test-model")
        error = caught.value
    else:
        _, _, error = await collect(adapter)

    assert isinstance(error, ProviderError) and error.category == "unavailable"


# ---- the key stays secret -----------------------------------------------------------------------

@pytest.mark.parametrize("category", ["auth", "bad_request", "rate_limited", "unavailable"])
async def test_the_api_key_never_appears_in_an_error_even_when_the_provider_echoes_it(fake, category, caplog):
    fake.behaviour = Behaviour(error=category, message=f"Bad request with key {KEY} (masked {KEY[:8]}****{KEY[-4:]})")
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model")
    _, _, stream_error = await collect(adapter_for(fake))

    for error in (caught.value, stream_error):
        for text in (str(error), repr(error), error.message, str(error.args)):
            assert KEY not in text
            assert KEY[8:-4] not in text
            assert f"{KEY[:8]}****" not in text
    assert KEY not in caplog.text


async def test_openais_masked_key_echo_is_scrubbed():
    with FakeProvider("openai", behaviour=Behaviour(error="auth")) as fake, pytest.raises(ProviderError) as caught:
            await adapter_for(fake).complete(messages=MESSAGES, model="gpt-4o-mini")

    assert caught.value.category == "auth"
    assert "Incorrect API key provided" in caught.value.message
    assert KEY[:8] not in str(caught.value) and KEY[-4:] not in str(caught.value)


async def test_transport_errors_do_not_reveal_the_key(fake):
    fake.behaviour = Behaviour(delay=5)

    with pytest.raises(ProviderError) as caught:
        await adapter_for(fake).complete(messages=MESSAGES, model="test-model", timeout=0.2)

    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    # Client exceptions may hold the request (and so its headers): they are not chained into ours.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_an_adapters_repr_does_not_show_its_key():
    for provider in HTTP_ADAPTERS:
        adapter = get_adapter(provider, api_key=KEY, base_url="http://127.0.0.1:9/v1")
        assert KEY not in repr(adapter) and KEY not in str(adapter)


# ---- concurrency and connection reuse -----------------------------------------------------------

async def test_sequential_calls_reuse_one_connection(fake):
    adapter = adapter_for(fake)

    for _ in range(3):
        await adapter.complete(messages=MESSAGES, model="test-model")
    events, _, error = await collect(adapter)

    assert error is None and events[-1].result is not None
    assert fake.connections_opened == 1


async def test_many_concurrent_streams_all_complete(fake):
    fake.behaviour = Behaviour(text="x y z", chunk_gap=0.05)
    adapter = adapter_for(fake)

    outcomes = await asyncio.gather(*(collect(adapter) for _ in range(40)))

    assert all(error is None and events[-1].result.text == "x y z" for events, _, error in outcomes)
    assert len(fake.requests) == 40


@pytest.mark.asyncio
async def test_streams_reuse_the_connection_after_the_end_marker():
    from providers.adapters import get_adapter
    from tests.fakes import FakeProvider

    with FakeProvider("openai") as fake:
        adapter = get_adapter("openai", api_key="sk-test-key-0123456789", base_url=fake.base_url)
        for _ in range(3):
            events = [event async for event in adapter.stream(messages=[{"role": "user", "content": "hi"}], model="gpt-4o-mini")]
            assert events[-1].result is not None
        assert fake.connections_opened == 1
