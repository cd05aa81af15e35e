"""Provider calls honour HTTP(S)_PROXY and NO_PROXY, as httpx does, over the aiohttp transport."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from providers.adapters import ProviderError, aclose_shared_client, get_adapter
from tests.fakes import FakeProvider
from tests.fakes.helpers import KEY, MESSAGES

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def fresh_shared_client():
    await aclose_shared_client()  # the client reads the proxy variables when it is made
    yield
    await aclose_shared_client()


@pytest_asyncio.fixture
async def proxy():
    """A forward proxy that records each request line and refuses with 502."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await reader.readline()).decode().strip())
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    server.close()
    await server.wait_closed()


async def test_calls_go_through_the_proxy_the_environment_names(proxy, monkeypatch):
    proxy_url, seen = proxy
    with FakeProvider("openai") as fake:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        adapter = get_adapter("openai", api_key=KEY, base_url=fake.base_url)
        with pytest.raises(ProviderError) as failure:
            await adapter.complete(messages=MESSAGES, model="test-model")
        assert failure.value.category == "unavailable"
        assert seen and seen[0].startswith(f"POST {fake.base_url}")  # absolute URI: a proxy request
        assert fake.requests == []


async def test_no_proxy_hosts_are_called_directly(proxy, monkeypatch):
    proxy_url, seen = proxy
    with FakeProvider("openai") as fake:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        adapter = get_adapter("openai", api_key=KEY, base_url=fake.base_url)
        result = await adapter.complete(messages=MESSAGES, model="test-model")
        assert result.text and seen == [] and len(fake.requests) == 1
