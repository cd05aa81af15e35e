"""Stop sequences and JSON output at the adapters: what each provider is sent, and where DAC
ends an answer itself (a provider that takes no `stop`, or drops it)."""

from __future__ import annotations

import json
import time

import pytest
import pytest_asyncio

from providers.adapters import ResponseFormat, aclose_shared_client, get_adapter
from providers.adapters.demo import demo_json
from providers.adapters.http_adapter import Accumulator
from tests.fakes import Behaviour, FakeProvider
from tests.fakes.helpers import HTTP_ADAPTERS, MESSAGES, adapter_for, collect, deltas


@pytest_asyncio.fixture(autouse=True)
async def close_shared_client():
    yield
    await aclose_shared_client()



# ---- the accumulator ends the answer ------------------------------------------------------------

def pieces_through(stop: tuple[str, ...], pieces: list[str]) -> tuple[list[str], Accumulator]:
    acc = Accumulator("m", stop)
    passed = [acc.add_text(piece) for piece in pieces]
    if not acc.stopped_at_sequence:
        passed.append(acc.release_held())
    return passed, acc


def test_a_sequence_split_across_pieces_is_found_and_nothing_of_it_passes():
    passed, acc = pieces_through(("\nObservation:",), ["Thought: look", " it up.\nObs", "erva", "tion: sunny", " more"])
    assert passed == ["Thought: look", " it up.", "", "", ""]
    assert (acc.text, acc.finish, acc.ended) == ("Thought: look it up.", "stop", True)


def test_text_that_only_looked_like_the_start_of_a_sequence_is_passed_on_once_it_is_not():
    passed, acc = pieces_through(("END",), ["Hello E", "ND", "x"])
    assert passed == ["Hello ", "", ""] and acc.text == "Hello "
    passed, acc = pieces_through(("END",), ["Hello E", "aster", " and EN"])
    assert passed == ["Hello ", "Easter", " and ", "EN"] and acc.text == "Hello Easter and EN"
    assert not acc.stopped_at_sequence and acc.finish is None


def test_the_earliest_of_several_sequences_wins_and_one_at_the_start_leaves_an_empty_answer():
    _, acc = pieces_through(("cd", "b"), ["abcd"])
    assert acc.text == "a"
    _, acc = pieces_through(("ab",), ["ab", "c"])
    assert (acc.text, acc.finish) == ("", "stop")


def test_without_sequences_text_passes_as_it_comes():
    passed, acc = pieces_through((), ["a", "b"])
    assert passed == ["a", "b", ""] and acc.held == ""


# ---- through each provider ----------------------------------------------------------------------

TEXT = "The answer is 42. STOP Then more words the client never asked for."


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", HTTP_ADAPTERS)
@pytest.mark.parametrize("method", ["complete", "stream"])
async def test_each_provider_answer_ends_before_the_stop_sequence(provider, method):
    with FakeProvider(provider, behaviour=Behaviour(text=TEXT, chunks=13)) as fake:
        adapter = adapter_for(fake)
        if method == "complete":
            result = await adapter.complete(messages=MESSAGES, model="m", stop=["STOP"])
        else:
            events, _, error = await collect(adapter, model="m", stop=["STOP"])
            assert error is None
            result = events[-1].result
            assert deltas(events) == result.text
    assert (result.text, result.finish_reason) == ("The answer is 42. ", "stop")
    sent = fake.last_request.json
    if provider == "gemini":
        assert sent["generationConfig"]["stopSequences"] == ["STOP"]
    else:
        assert sent.get("stop") == (None if provider == "perplexity" else ["STOP"])


@pytest.mark.asyncio
async def test_a_stream_cut_by_dac_does_not_wait_for_the_rest_of_the_providers_answer():
    """Perplexity goes on writing after the sequence; DAC closes that connection instead of
    reading (or draining) the rest."""
    behaviour = Behaviour(text="one two STOP three four five six", chunk_gap=2.0)
    with FakeProvider("perplexity", behaviour=behaviour) as fake:
        started = time.monotonic()
        events, _, error = await collect(adapter_for(fake), model="sonar", stop=["STOP"])
        took = time.monotonic() - started
    assert error is None and deltas(events) == "one two "
    assert events[-1].result.finish_reason == "stop"
    assert took < 8.0, f"{took:.1f} s: it waited for the four pieces after the sequence (2 s apart)"


@pytest.mark.asyncio
async def test_a_partial_match_at_the_very_end_of_a_stream_is_part_of_the_answer():
    with FakeProvider("perplexity", behaviour=Behaviour(text="it ends with ST", chunks=5)) as fake:
        events, _, error = await collect(adapter_for(fake), model="sonar", stop=["STOP"])
    assert error is None and deltas(events) == "it ends with ST" == events[-1].result.text


@pytest.mark.asyncio
@pytest.mark.parametrize("provider, sent", [
    ("openai", {"response_format": {"type": "json_object"}}),
    ("openai_compatible", {"response_format": {"type": "json_object"}}),
    ("openrouter", {"response_format": {"type": "json_object"}}),
    ("perplexity", {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}),
    ("gemini", {"generationConfig": {"responseMimeType": "application/json"}}),
])
async def test_json_object_is_asked_for_in_each_providers_terms_and_accepted(provider, sent):
    with FakeProvider(provider, behaviour=Behaviour(text='{"ok": true}')) as fake:
        result = await adapter_for(fake).complete(messages=MESSAGES, model="m", response_format=ResponseFormat("json_object"))
    assert json.loads(result.text) == {"ok": True}
    assert {field: fake.last_request.json[field] for field in sent} == sent


@pytest.mark.asyncio
async def test_the_fakes_refuse_what_their_provider_would():
    """So that the tests above prove the adapters' shapes: Perplexity takes no json_object."""
    with FakeProvider("perplexity") as fake:
        adapter = adapter_for(fake)
        adapter._response_format = lambda wanted: {"type": "json_object"}  # what a generic adapter would send
        with pytest.raises(Exception) as refused:
            await adapter.complete(messages=MESSAGES, model="sonar", response_format=ResponseFormat("json_object"))
    assert refused.value.category == "bad_request" and "json_schema" in refused.value.message


# ---- the demo provider --------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_the_demo_answers_json_of_the_schemas_shape_and_honours_stop():
    schema = {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "array", "items": {"type": "integer"}},
        "unit": {"enum": ["C", "F"]}, "note": {"type": ["null", "string"]}}}
    demo = get_adapter("demo", chunk_delay=0)
    result = await demo.complete(messages=MESSAGES, model="demo-1",
                                 response_format=ResponseFormat("json_schema", name="w", schema=schema))
    assert json.loads(result.text) == {"city": "demo", "days": [0], "unit": "C", "note": "demo"}
    anything = await demo.complete(messages=MESSAGES, model="demo-1", response_format=ResponseFormat("json_object"))
    assert json.loads(anything.text)["demo"] is True
    events, _, _ = await collect(demo, model="demo-1", stop=["not from a real model"])
    assert deltas(events) == "(Demo answer — " and events[-1].result.finish_reason == "stop"
    assert demo_json({"const": 7}, "q") == 7


# ---- a surrogate pair split across pieces -------------------------------------------------------

def test_an_emoji_whose_halves_come_in_two_pieces_is_joined_back():
    """A provider escaping an emoji's two halves in two events ("\\ud83d", then "\\ude00") gave
    two U+FFFD instead of the emoji."""
    passed, acc = pieces_through((), ["smile \ud83d", "\ude00 twice \ud83d\ude00", " and half \ud83d"])
    assert acc.text == "smile \U0001f600 twice \U0001f600 and half \ufffd" == "".join(passed)
    passed, acc = pieces_through(("STOP",), ["a \ud83d", "\ude00 ST", "OP b"])
    assert acc.text == "a \U0001f600 " == "".join(passed)


@pytest.mark.asyncio
async def test_a_split_pair_streamed_by_a_provider_arrives_whole():
    with FakeProvider("openrouter", behaviour=Behaviour(text="hi \ud83d\ude00 there", chunks=3)) as fake:
        adapter = adapter_for(fake)
        events, _, error = await collect(adapter, model="m")
    pieces = [e.delta for e in events if e.delta]
    assert error is None and "".join(pieces) == "hi \U0001f600 there" == events[-1].result.text


def test_of_overlapping_sequences_the_one_complete_first_ends_the_answer_however_it_is_split():
    """A model stops as soon as a sequence is complete: "Y" at 'aY', before "aYaY" could be."""
    for pieces in (["aYaY"], ["aY", "aY"], ["a", "Y", "a", "Y"]):
        _, acc = pieces_through(("Y", "aYaY"), pieces)
        assert acc.text == "a", pieces


# ---- sampling fields ----------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("provider, sent", [
    ("openai", {"top_p": 0.5, "seed": 7, "presence_penalty": 0.2, "frequency_penalty": -0.4}),
    ("openai_compatible", {"top_p": 0.5, "seed": 7, "presence_penalty": 0.2, "frequency_penalty": -0.4}),
    ("openrouter", {"top_p": 0.5, "seed": 7, "presence_penalty": 0.2, "frequency_penalty": -0.4}),
    ("perplexity", {"top_p": 0.5, "presence_penalty": 0.2, "frequency_penalty": -0.4}),  # Sonar takes no seed
    ("gemini", {"topP": 0.5, "seed": 7, "presencePenalty": 0.2, "frequencyPenalty": -0.4}),
])
async def test_sampling_fields_reach_each_provider_under_its_names(provider, sent):
    from providers.adapters import Sampling

    with FakeProvider(provider) as fake:
        await adapter_for(fake).complete(messages=MESSAGES, model="m", temperature=0.3,
                                         sampling=Sampling(top_p=0.5, seed=7, presence_penalty=0.2, frequency_penalty=-0.4))
    body = fake.last_request.json
    where = body["generationConfig"] if provider == "gemini" else body
    assert {name: where.get(name) for name in sent} == sent
    assert "seed" not in where if provider == "perplexity" else True


@pytest.mark.asyncio
@pytest.mark.parametrize("provider, model, effort, sent", [
    ("openai", "o4-mini", "low", {"reasoning_effort": "low"}),
    ("openai", "gpt-5.1", "none", {"reasoning_effort": "none"}),
    ("openai", "gpt-4o-mini", "high", {}),  # no reasoning: it would answer the field with a 400
    ("openai", "gpt-5-chat-latest", "low", {}),  # nor GPT-5's chat models
    ("openai", "o3", "none", {"reasoning_effort": "low"}),  # the nearest level each family has
    ("openai", "gpt-5-mini", "none", {"reasoning_effort": "minimal"}),
    ("openai", "gpt-5.1", "minimal", {"reasoning_effort": "low"}),
    ("openai_compatible", "qwen3", "medium", {"reasoning_effort": "medium"}),
    ("openrouter", "deepseek/deepseek-r1", "xhigh", {"reasoning": {"effort": "xhigh"}}),
    ("perplexity", "sonar-deep-research", "minimal", {"reasoning_effort": "low"}),
    ("perplexity", "sonar-pro", "high", {}),  # only deep research takes an effort
    ("gemini", "gemini-3-flash-preview", "none", {"thinkingConfig": {"thinkingLevel": "minimal"}}),
    ("gemini", "gemini-3-pro-preview", "medium", {"thinkingConfig": {"thinkingLevel": "high"}}),
    ("gemini", "gemini-2.5-flash", "none", {"thinkingConfig": {"thinkingBudget": 0}}),
    ("gemini", "gemini-2.5-pro", "none", {"thinkingConfig": {"thinkingBudget": 128}}),  # 2.5 Pro always thinks
    ("gemini", "gemini-flash-latest", "low", {"thinkingConfig": {"thinkingBudget": 1024}}),
    ("gemini", "gemini-2.0-flash", "high", {}),  # does not think: refuses thinkingConfig
    ("gemini", "gemini-2.5-flash-image", "high", {}),
    ("gemini", "gemini-exp-1206", "high", {}),
])
async def test_reasoning_effort_reaches_each_provider_in_its_terms(provider, model, effort, sent):
    from providers.adapters import Sampling

    with FakeProvider(provider) as fake:
        await adapter_for(fake).complete(messages=MESSAGES, model=model, sampling=Sampling(reasoning_effort=effort))
    body = fake.last_request.json
    where = body.get("generationConfig", {}) if provider == "gemini" else body
    assert {name: where[name] for name in ("reasoning_effort", "reasoning", "thinkingConfig") if name in where} == sent
