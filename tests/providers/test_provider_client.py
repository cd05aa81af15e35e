"""The shared provider client: HTTP(S)_PROXY and NO_PROXY honoured, and no
cookie carried from one call (one org) to the next."""

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


async def test_no_cookie_a_provider_sets_is_sent_on_a_later_call():
    """The client is shared by every org: a Set-Cookie from one call must not ride on the next."""
    headers_seen: list[bytes] = []
    body = (
        b'{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":'
        b'{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,'
        b'"completion_tokens":1,"total_tokens":2}}'
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            headers_seen.append(head.lower())
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: session=org-a-secret; Path=/\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    # A host name, not an address: cookie jars commonly keep none for IP hosts.
    base_url = f"http://localhost:{server.sockets[0].getsockname()[1]}/v1"
    try:
        for _ in range(2):
            adapter = get_adapter("openai_compatible", api_key=KEY, base_url=base_url)
            assert (await adapter.complete(messages=MESSAGES, model="m")).text == "ok"
    finally:
        server.close()
    assert len(headers_seen) == 2 and b"cookie:" not in headers_seen[1]


async def test_the_adapters_need_no_django_settings():
    """The conformance check (../shared/checks) drives the adapters without a configured Django:
    the client then takes its default connection limit instead of failing every call."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    code = "from providers.adapters.client import _max_connections; print(_max_connections())"
    for settings_module in (None, "dac.settings"):  # none at all; production settings that refuse to load
        run_env = {**env, "DEBUG": "0", **({"DJANGO_SETTINGS_MODULE": settings_module} if settings_module else {})}
        done = subprocess.run([sys.executable, "-c", code], env=run_env, cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == "2000", done.stderr[-2000:]

