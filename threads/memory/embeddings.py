"""Optional dense embeddings through the org's own provider key (off unless the org turns it on).

Wire formats, over httpx against the key's base_url (or the provider's default):
- OpenAI and OpenAI-compatible servers: `POST {base}/embeddings` with `{"model", "input": [...],
  "dimensions"}` → `{"data": [{"index", "embedding"}]}` (`dimensions` is sent to OpenAI only;
  a compatible server must return DAC_MEMORY_DENSE_DIM values by itself).
- Gemini: `POST {base}/models/{model}:embedContent` for one text and `:batchEmbedContents` for
  several, with `outputDimensionality`, key in `x-goog-api-key`.

Every vector of a collection has DAC_MEMORY_DENSE_DIM dimensions; points carry the `embedder`
that made them (`provider:model:dim`) and queries only compare with their own embedder's
points, so switching model never mixes spaces (run `reindex_memory` to re-embed).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import quote
from urllib.request import getproxies_environment

import httpcore
import httpx

from dac.errors import ValidationFailed
from providers.adapters.client import environment_proxy
from providers.urlsafety import connect_addresses
from threads.memory.store import conf, dense_size

logger = logging.getLogger("threads.memory")

DEFAULT_MODELS = {"openai": "text-embedding-3-small", "gemini": "gemini-embedding-001", "openai_compatible": ""}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "gemini": "https://generativelanguage.googleapis.com/v1beta"}
MAX_CHARS = 8_000  # well under every provider's per-input token limit
BATCH = 64

# org id → monotonic time of the last failure: dense is skipped for a while instead of
# paying the timeout on every chat while a provider is down.
_failed: dict[int, float] = {}


class EmbeddingError(Exception):
    pass


@dataclass(frozen=True)
class Embedder:
    org_id: int
    provider: str
    model: str
    base_url: str
    api_key: str = ""
    check_addresses: bool = False  # base_url is the org's own: connect only where it is allowed

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.model}:{dense_size()}"

    def __repr__(self) -> str:  # never the key
        return f"<Embedder {self.id} {self.base_url}>"

    def embed(self, texts: list[str], *, query: bool = False) -> list[list[float]]:
        """One vector per text; EmbeddingError on any failure (never raises anything else)."""
        if not texts:
            return []
        cooldown = float(conf("DAC_MEMORY_RETRY_SECONDS", 30.0))
        if time.monotonic() - _failed.get(self.org_id, -1e9) < cooldown:
            raise EmbeddingError(f"{self.provider} embeddings failed recently; retrying after {cooldown:.0f}s")
        timeout = float(conf("DAC_MEMORY_EMBED_TIMEOUT", 5.0))
        clipped = [(t or " ")[:MAX_CHARS] for t in texts]
        try:
            with self._client(timeout) as client:
                vectors: list[list[float]] = []
                for start in range(0, len(clipped), BATCH):
                    vectors.extend(self._request(client, clipped[start : start + BATCH], query))
        except EmbeddingError as exc:
            _failed[self.org_id] = time.monotonic()
            logger.warning("memory: embeddings via %s failed: %s", self.provider, exc)
            raise
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
            _failed[self.org_id] = time.monotonic()
            logger.warning("memory: embeddings via %s failed: %s", self.provider, type(exc).__name__)
            raise EmbeddingError(f"{self.provider} embeddings: {type(exc).__name__}") from exc
        _failed.pop(self.org_id, None)
        size = dense_size()
        for vector in vectors:
            if len(vector) != size:
                raise EmbeddingError(f"{self.provider} returned {len(vector)} dimensions, DAC_MEMORY_DENSE_DIM is {size}")
        return vectors

    def _client(self, timeout: float) -> httpx.Client:
        """An org's own base URL reached directly is connected to only at addresses that pass the
        check (_CheckedTransport); through a proxy, the proxy resolves it (docs/security.md)."""
        if self.check_addresses and environment_proxy(self.base_url, getproxies_environment()) is None:
            return httpx.Client(timeout=timeout, transport=_CheckedTransport())
        return httpx.Client(timeout=timeout)

    def _request(self, client: httpx.Client, texts: list[str], query: bool) -> list[list[float]]:
        if self.provider == "gemini":
            return self._gemini(client, texts, query)
        body: dict = {"model": self.model, "input": texts}
        if self.provider == "openai":
            body["dimensions"] = dense_size()
        response = client.post(f"{self.base_url}/embeddings", json=body, headers={"Authorization": f"Bearer {self.api_key}"})
        _raise_for(response, self.provider)
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        if len(data) != len(texts):
            raise EmbeddingError(f"{self.provider} returned {len(data)} embeddings for {len(texts)} texts")
        return [[float(x) for x in item["embedding"]] for item in data]

    def _gemini(self, client: httpx.Client, texts: list[str], query: bool) -> list[list[float]]:
        model = self.model.removeprefix("models/")
        path = quote(model, safe="-._~")
        headers = {"x-goog-api-key": self.api_key}
        task = "RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT"

        def part(text: str) -> dict:
            return {"content": {"parts": [{"text": text}]}, "taskType": task, "outputDimensionality": dense_size()}

        if len(texts) == 1:
            response = client.post(f"{self.base_url}/models/{path}:embedContent", json=part(texts[0]), headers=headers)
            _raise_for(response, self.provider)
            return [[float(x) for x in response.json()["embedding"]["values"]]]
        body = {"requests": [{"model": f"models/{model}", **part(text)} for text in texts]}
        response = client.post(f"{self.base_url}/models/{path}:batchEmbedContents", json=body, headers=headers)
        _raise_for(response, self.provider)
        embeddings = response.json()["embeddings"]
        if len(embeddings) != len(texts):
            raise EmbeddingError(f"gemini returned {len(embeddings)} embeddings for {len(texts)} texts")
        return [[float(x) for x in item["values"]] for item in embeddings]


class _CheckedBackend(httpcore.SyncBackend):
    """Connects to what the host resolves to now, every address checked (providers/urlsafety.py),
    each in turn until one answers: the connection reaches what was checked (a DNS answer cannot
    change in between), while the host's name stays the Host header and the TLS server name
    (httpcore takes those from the URL, not from here)."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = connect_addresses(host, port)
        except ValidationFailed as exc:
            raise httpcore.ConnectError(exc.message) from None
        for address in addresses[:-1]:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return super().connect_tcp(addresses[-1], port, timeout, local_address, socket_options)


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's own transport over a pool that connects through _CheckedBackend: httpx takes no
    network backend, so the pool its requests go through (`_pool`) is made again with one."""

    def __init__(self) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), network_backend=_CheckedBackend())


def _raise_for(response: httpx.Response, provider: str) -> None:
    if response.status_code >= 400:
        # The status only: bodies can echo the request, and the key must not reach a log.
        raise EmbeddingError(f"{provider} embeddings answered HTTP {response.status_code}")


def embedder_for(*, org_id: int, memory_settings) -> Embedder | None:
    """The org's embedder, or None when dense is off or cannot be used (logged).

    Reads the org's active key for the chosen provider: call inside the org's tenant context.
    """
    provider = getattr(memory_settings, "embeddings", "") if memory_settings is not None else ""
    if not provider:
        return None
    from providers import vault
    from providers.services.keys import active_keys
    from providers.urlsafety import validate_base_url

    key = active_keys().get(provider)
    if key is None:
        logger.info("memory: org %s chose %s embeddings but has no active %s key; lexical only", org_id, provider, provider)
        return None
    model = memory_settings.embedding_model or DEFAULT_MODELS.get(provider, "")
    if not model:
        logger.info("memory: org %s: %s embeddings need a model name; lexical only", org_id, provider)
        return None
    try:
        base_url = (validate_base_url(key.base_url) if key.base_url else "") or DEFAULT_BASE_URLS.get(provider, "")
        api_key = vault.decrypt(key.ciphertext, org_id=key.org_id)
    except Exception as exc:  # noqa: BLE001 - a bad key or URL turns dense off, never the chat
        logger.warning("memory: org %s: cannot use the %s key for embeddings (%s); lexical only", org_id, provider, type(exc).__name__)
        return None
    if not base_url:
        return None
    return Embedder(org_id=org_id, provider=provider, model=model, base_url=base_url.rstrip("/"), api_key=api_key,
                    check_addresses=bool(key.base_url))


def reset() -> None:
    _failed.clear()
