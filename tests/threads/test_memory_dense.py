"""Dense memory: embeddings through the org's key, fused with lexical results by RRF.

The embeddings come from a tiny fake server on 127.0.0.1 that speaks OpenAI's `/embeddings`
and Gemini's `embedContent` / `batchEmbedContents`, with deterministic vectors: words of one
concept ("dog", "puppy", "hound") share an axis, so a dense match can be told from a lexical
one ("puppy" never matches "dog" lexically)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audit.services import Actor
from providers.services.keys import provider_key_add
from tenants.context import tenant_context
from tests.threads.test_memory import fresh_memory, make_thread, noise, points, recall  # noqa: F401 - fresh_memory is autouse
from threads import memory
from threads.memory.services import memory_settings_update, process_backlog
from threads.models import MemoryBacklog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

DIM = 8
CONCEPTS = [
    {"dog", "dogs", "puppy", "puppies", "hound", "canine"},
    {"car", "cars", "sedan", "automobile", "vehicle"},
    {"budget", "invoice", "cost", "money", "price"},
    {"rain", "weather", "forecast", "sunny"},
]


def embed(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in text.lower().replace("?", " ").replace(".", " ").split():
        for axis, concept in enumerate(CONCEPTS):
            if word in concept:
                vector[axis] += 1.0
                break
        else:
            vector[4 + hashlib.md5(word.encode()).digest()[0] % 4] += 0.2
    return vector


class FakeEmbeddings:
    """OpenAI and Gemini embeddings over real HTTP. `status` forces an error answer."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                if fake.status != 200:
                    return self._send(fake.status, {"error": {"message": f"bad key {self.headers.get('Authorization') or self.headers.get('x-goog-api-key')}"}})
                if self.path == "/v1/embeddings":
                    data = [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(body["input"])]
                    return self._send(200, {"object": "list", "data": list(reversed(data)), "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                if self.path.endswith(":embedContent"):
                    return self._send(200, {"embedding": {"values": embed(body["content"]["parts"][0]["text"])}})
                if self.path.endswith(":batchEmbedContents"):
                    return self._send(200, {"embeddings": [{"values": embed(r["content"]["parts"][0]["text"])} for r in body["requests"]]})
                return self._send(404, {"error": {"message": "no such route"}})

            def _send(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(settings):
    settings.DAC_MEMORY_DENSE_DIM = DIM
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    server = FakeEmbeddings()
    yield server
    server.close()


def add_key(org, provider: str, base_url: str, key: str) -> None:
    with tenant_context(org):
        provider_key_add(org_id=org.pk, provider=provider, api_key=key, base_url=base_url, actor=Actor.system())


def pets_and_cars(org):
    noise(org)
    _, (dog,) = make_thread(org, "Pets", "my dog Rex loves the park")
    _, (car,) = make_thread(org, "Garage", "the sedan needs new tyres")
    current, _ = make_thread(org, "Now", index=False)
    return dog, car, current


def test_dense_is_off_by_default_and_never_calls_the_provider(org_a, fake):
    add_key(org_a, "openai", f"{fake.url}/v1", "sk-test-dense-0123456789")
    _, _, current = pets_and_cars(org_a)
    assert recall(org_a, current, "advice about a puppy") == []  # no word in common, no model
    assert fake.requests == []
    assert all("embedder" not in p.payload for p in points())


def test_openai_embeddings_find_what_no_word_matches(org_a, fake):
    add_key(org_a, "openai", f"{fake.url}/v1", "sk-test-dense-0123456789")
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embeddings="openai")
    dog, car, current = pets_and_cars(org_a)
    recalled = recall(org_a, current, "advice about a puppy")
    assert recalled and recalled[0].message_id == dog.pk
    assert car.pk not in [r.message_id for r in recalled[:1]]
    sent = fake.requests[0]
    assert sent["path"] == "/v1/embeddings" and sent["headers"]["Authorization"] == "Bearer sk-test-dense-0123456789"
    assert sent["json"]["model"] == "text-embedding-3-small" and sent["json"]["dimensions"] == DIM
    assert {p.payload["embedder"] for p in points()} == {f"openai:text-embedding-3-small:{DIM}"}
    with tenant_context(org_a):
        search = memory.memory_search(org_id=org_a.pk, query="puppy")
    assert search.mode == "hybrid" and search.results[0].message_id == dog.pk


def test_hybrid_fuses_word_matches_and_meaning_matches(org_a, fake):
    add_key(org_a, "openai", f"{fake.url}/v1", "sk-test-dense-0123456789")
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embeddings="openai")
    noise(org_a)
    _, (exact,) = make_thread(org_a, "Rex", "Rex chewed the invoice")
    _, (meaning,) = make_thread(org_a, "Spreadsheet", "the puppy ate our budget spreadsheet")
    current, _ = make_thread(org_a, "Now", index=False)
    recalled = recall(org_a, current, "Rex chewed the invoice again")
    # In both lists (words and meaning) beats in one: RRF puts the exact match first.
    assert [r.message_id for r in recalled[:2]] == [exact.pk, meaning.pk]
    assert recalled[0].score > recalled[1].score


def test_gemini_embeddings_use_embed_content_and_batch(org_a, fake):
    add_key(org_a, "gemini", f"{fake.url}/v1beta", "AIza-test-dense-0123456789")
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embeddings="gemini")
    dog, _, current = pets_and_cars(org_a)  # the noise thread is indexed in one batch
    recalled = recall(org_a, current, "a puppy question")
    assert recalled and recalled[0].message_id == dog.pk
    batch = next(r for r in fake.requests if r["path"].endswith(":batchEmbedContents"))
    single = [r for r in fake.requests if r["path"].endswith(":embedContent")][-1]
    assert batch["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert batch["headers"]["x-goog-api-key"] == "AIza-test-dense-0123456789"
    assert batch["json"]["requests"][0]["outputDimensionality"] == DIM and batch["json"]["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"
    assert single["json"]["taskType"] == "RETRIEVAL_QUERY"


def test_a_failing_embeddings_provider_leaves_lexical_memory_working_and_retries_later(org_a, fake, settings):
    settings.DAC_MEMORY_BACKOFF_SECONDS = 0
    settings.DAC_MEMORY_RETRY_SECONDS = 0
    add_key(org_a, "openai", f"{fake.url}/v1", "sk-test-dense-0123456789")
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embeddings="openai")
    fake.status = 401
    dog, car, current = pets_and_cars(org_a)
    assert {p.id for p in points()} >= {dog.pk, car.pk}  # indexed, lexical only
    assert all("embedder" not in p.payload for p in points())
    with tenant_context(org_a):
        rows = list(MemoryBacklog.objects.all())
    assert rows and all("401" in r.last_error and "sk-test" not in r.last_error for r in rows)
    assert recall(org_a, current, "the sedan tyres")[0].message_id == car.pk  # lexical still answers
    fake.status = 200
    process_backlog(org_id=org_a.pk)
    assert all(p.payload.get("embedder") for p in points())
    with tenant_context(org_a):
        assert not MemoryBacklog.objects.exists()
    assert recall(org_a, current, "puppy")[0].message_id == dog.pk


def test_an_org_without_a_key_for_the_chosen_provider_stays_lexical(org_a, fake):
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embeddings="openai")
    _, car, current = pets_and_cars(org_a)
    assert recall(org_a, current, "sedan")[0].message_id == car.pk
    assert fake.requests == []


def test_turning_embeddings_on_re_embeds_what_is_already_remembered(org_a, fake):
    add_key(org_a, "openai", f"{fake.url}/v1", "sk-test-dense-0123456789")
    dog, _, current = pets_and_cars(org_a)
    assert all("embedder" not in p.payload for p in points())
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embeddings="openai")
    assert all(p.payload.get("embedder") == f"openai:text-embedding-3-small:{DIM}" for p in points())
    assert recall(org_a, current, "advice about a puppy")[0].message_id == dog.pk
    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), embedding_model="text-embedding-3-large")
    assert {p.payload.get("embedder") for p in points()} == {f"openai:text-embedding-3-large:{DIM}"}


def test_the_embeddings_host_is_reached_at_the_address_checked_for_it(org_a, fake, settings, monkeypatch):
    """The key's base URL was checked when the embedder was made, then httpx resolved the host
    again to connect: a host rebound to 127.0.0.1 in between was reached (DNS rebinding)."""
    import socket
    from types import SimpleNamespace

    from providers import urlsafety
    from threads.memory.embeddings import EmbeddingError, embedder_for, reset

    port = fake.server.server_address[1]
    dns = {"answer": "93.184.216.34"}  # the attacker's name server, as DAC asks it
    monkeypatch.setattr(urlsafety, "socket", SimpleNamespace(
        getaddrinfo=lambda host, at, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (dns["answer"], at))],
        IPPROTO_TCP=socket.IPPROTO_TCP, gaierror=socket.gaierror))
    add_key(org_a, "openai", f"http://embeddings.test:{port}/v1", "sk-test-dense-0123456789")
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
    with tenant_context(org_a):
        embedder = embedder_for(org_id=org_a.pk, memory_settings=SimpleNamespace(embeddings="openai", embedding_model=""))
    assert embedder is not None  # the check saw a public address
    dns["answer"] = "127.0.0.1"
    with pytest.raises(EmbeddingError, match="ConnectError"):
        embedder.embed(["my dog"])
    assert fake.requests == []
    reset()
    # An address the check passes is the one connected to, under the host's own name.
    monkeypatch.setattr(urlsafety, "_is_private", lambda address: False)
    assert embedder.embed(["my dog"]) == [embed("my dog")]
    assert fake.requests[0]["headers"]["Host"] == f"embeddings.test:{port}"


def test_embeddings_through_a_proxy_leave_the_host_to_it(monkeypatch):
    """Behind HTTP(S)_PROXY the proxy resolves the host (its egress rules apply): DAC keeps httpx's
    own client there, whose proxy and NO_PROXY handling a checked transport would switch off."""
    from urllib.request import getproxies_environment

    from providers.adapters.client import environment_proxy

    def _proxied(url: str) -> bool:
        return environment_proxy(url, getproxies_environment()) is not None

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not _proxied("https://embeddings.example.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _proxied("https://embeddings.example.com/v1") and not _proxied("http://embeddings.example.com/v1")
    monkeypatch.setenv("NO_PROXY", "embeddings.example.com")
    assert not _proxied("https://embeddings.example.com/v1")
