"""The fake providers themselves: later end-to-end tests and benchmarks lean on them, so they get
their own checks (with plain httpx, independent of the adapters)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fakes import Behaviour, FakeProvider, split_text

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello fake"}]}


def test_queued_behaviours_are_used_once_in_order_then_the_default():
    with FakeProvider("openai", behaviour=Behaviour(text="default")) as fake:
        fake.enqueue(Behaviour(text="first"), Behaviour(error="unavailable"))
        with httpx.Client() as client:
            answers = [client.post(f"{fake.base_url}/chat/completions", json=CHAT) for _ in range(3)]

    assert [r.status_code for r in answers] == [200, 503, 200]
    assert answers[0].json()["choices"][0]["message"]["content"] == "first"
    assert answers[2].json()["choices"][0]["message"]["content"] == "default"


def test_requests_are_recorded_with_path_query_headers_and_json_body():
    with FakeProvider("gemini") as fake:
        httpx.post(f"{fake.base_url}/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                   headers={"x-goog-api-key": "k-1"}, json={"contents": []})
        request = fake.last_request

    assert (request.method, request.path, request.query) == (
        "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", {"alt": "sse"})
    assert request.headers["x-goog-api-key"] == "k-1"
    assert request.json == {"contents": []}


def test_a_required_key_is_enforced_with_the_providers_auth_error():
    with FakeProvider("openai", api_key="sk-right") as fake:
        url = f"{fake.base_url}/chat/completions"
        wrong = httpx.post(url, json=CHAT, headers={"Authorization": "Bearer sk-wrong-123456789"})
        right = httpx.post(url, json=CHAT, headers={"Authorization": "Bearer sk-right"})

    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200


def test_chunks_splits_the_answer_into_exactly_that_many_pieces():
    assert split_text("abcdefgh", 3) == ["abc", "def", "gh"]
    assert len(split_text("hi", 10)) == 10
    assert "".join(split_text("Hello world", None)) == "Hello world"


def test_sse_stream_sends_one_http_chunk_per_event_as_it_goes():
    behaviour = Behaviour(text="a b c", chunk_gap=0.1)
    with FakeProvider("openrouter", behaviour=behaviour) as fake, httpx.stream(
        "POST", f"{fake.base_url}/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        arrivals = [(time.monotonic(), chunk) for chunk in response.iter_raw()]

    body = b"".join(chunk for _, chunk in arrivals)
    assert body.startswith(b": OPENROUTER PROCESSING\n\n")
    assert body.rstrip().endswith(b"data: [DONE]")
    assert arrivals[-1][0] - arrivals[0][0] >= 0.15  # two 0.1 s gaps between three pieces


def test_gemini_without_alt_sse_streams_a_json_array():
    with FakeProvider("gemini", behaviour=Behaviour(text="x y")) as fake:
        response = httpx.post(f"{fake.base_url}/models/gemini-2.5-flash:streamGenerateContent", json={"contents": []})

    items = json.loads(response.content)
    assert isinstance(items, list) and len(items) == 2
    assert "".join(i["candidates"][0]["content"]["parts"][0]["text"] for i in items) == "x y"


def test_gemini_stream_events_are_crlf_separated_and_end_without_done():
    with FakeProvider("gemini", behaviour=Behaviour(text="x y")) as fake:
        response = httpx.post(f"{fake.base_url}/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                              json={"contents": []})

    assert response.content.count(b"\r\n\r\n") == 2
    assert b"[DONE]" not in response.content


def test_unknown_paths_get_a_404_in_the_providers_error_shape():
    with FakeProvider("openai") as fake:
        response = httpx.post(f"{fake.url}/v2/nothing", json={})

    assert response.status_code == 404 and "error" in response.json()


@pytest.mark.parametrize("provider", ["openai", "perplexity", "gemini"])
def test_the_fake_runs_standalone_from_the_command_line(provider):
    command = [sys.executable, "-m", "tests.fakes.server", "--provider", provider, "--port", "0",
               "--chunks", "3", "--chunk-gap-ms", "10"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        base_url = line.split("base_url=")[1].strip()
        if provider == "gemini":
            url, headers = f"{base_url}/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": "k"}
            body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        else:
            url, headers, body = f"{base_url}/chat/completions", {"Authorization": "Bearer k"}, CHAT
        response = httpx.post(url, json=body, headers=headers, timeout=5)
    finally:
        process.terminate()
        process.wait(5)

    assert response.status_code == 200
    assert urlsplit(base_url).path == {"openai": "/v1", "perplexity": "", "gemini": "/v1beta"}[provider]
