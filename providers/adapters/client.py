"""One shared httpx.AsyncClient per process and per running event loop.

Reusing a client keeps TLS connections to providers alive between calls, which saves a handshake
(tens of milliseconds) on every request. An AsyncClient is bound to the loop that first used it,
so each loop gets its own: ASGI servers run one long-lived loop per worker, while `async_to_sync`
and `asyncio.run()` in tests and commands create short-lived ones. Entries for loops that have
closed or been garbage-collected are dropped when the next client is made.

The client speaks httpx's API over aiohttp's connection pool (httpx-aiohttp's transport).
httpcore's own pool walks every pooled connection, probing each socket, whenever a request
starts or ends: with 64 calls in flight that was half of a worker's CPU (docs/performance.md).
aiohttp's pool hands out an idle connection in constant time.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import threading
import weakref
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import aiohttp
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient



@dataclass(frozen=True)
class _Entry:
    loop: weakref.ReferenceType[asyncio.AbstractEventLoop]
    client: httpx.AsyncClient


_lock = threading.Lock()
_clients: dict[int, _Entry] = {}


def shared_client() -> httpx.AsyncClient:
    """The client for the running loop, made on first use (must be called inside a coroutine)."""
    loop = asyncio.get_running_loop()
    key = id(loop)
    with _lock:
        entry = _clients.get(key)
        # id() values are reused after a loop is freed, so check it is the very same loop.
        if entry is not None and entry.loop() is loop and not entry.client.is_closed:
            return entry.client
        _forget_closed_loops()
        limits = httpx.Limits(
            max_connections=_max_connections(),  # calls in flight to providers, per process
            max_keepalive_connections=100,
            keepalive_expiry=30.0,
        )
        # HttpxAiohttpClient builds aiohttp transports for direct calls and for the proxies that
        # HTTPS_PROXY / HTTP_PROXY / NO_PROXY name, like httpx does with its own.
        client = HttpxAiohttpClient(
            limits=limits,
            timeout=httpx.Timeout(30.0),  # every call passes its own; this is only a backstop
            follow_redirects=False,  # a redirect means a wrong base URL, not something to chase
            headers={"User-Agent": "DAC-gateway/1.0"},
            cookies=_NO_COOKIES,
        )
        for transport in _aiohttp_transports(client):
            transport.client = functools.partial(_cookieless_session, transport)
        _clients[key] = _Entry(weakref.ref(loop), client)
        return client


# The client is shared by every org: a cookie one org's call received (a provider's or a custom
# endpoint's session) must never ride along on another org's call. Neither httpx's jar nor
# aiohttp's keeps any.
_NO_COOKIES = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _cookieless_session(transport: AiohttpTransport) -> aiohttp.ClientSession:
    """The aiohttp session the transport would make, without a cookie jar."""
    connector = aiohttp.TCPConnector(
        limit=transport.limits.max_connections or 0,
        keepalive_timeout=transport.limits.keepalive_expiry,
        ssl=transport.ssl_context,
    )
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


DEFAULT_MAX_CONNECTIONS = 2000


def _max_connections() -> int:
    """DAC_PROVIDER_MAX_CONNECTIONS; the adapters also run without Django (their unit tests, the
    conformance check), and then take the default."""
    try:
        return settings.DAC_PROVIDER_MAX_CONNECTIONS
    except ImproperlyConfigured:
        return DEFAULT_MAX_CONNECTIONS


def _forget_closed_loops() -> None:
    """Drop the clients of loops that have closed (short-lived loops: `async_to_sync` and
    `asyncio.run()` in tests and commands). Their connections died with the loop and cannot be
    closed cleanly any more; the aiohttp session and pool are only marked closed, so that they
    are freed without "Unclosed client session" errors in the log."""
    for key, entry in list(_clients.items()):
        loop = entry.loop()
        if loop is not None and not loop.is_closed():
            continue
        del _clients[key]
        for session in _aiohttp_sessions(entry.client):
            connector = session.connector
            session.detach()
            if connector is not None:
                connector._close()  # on a closed loop this only marks it closed


def _aiohttp_transports(client: httpx.AsyncClient) -> list[AiohttpTransport]:
    # httpx 0.28 keeps the default transport and the proxy transports in these two attributes.
    return [t for t in (client._transport, *client._mounts.values()) if isinstance(t, AiohttpTransport)]


def _aiohttp_sessions(client: httpx.AsyncClient) -> list[aiohttp.ClientSession]:
    return [t.client for t in _aiohttp_transports(client) if isinstance(t.client, aiohttp.ClientSession)]


@atexit.register
def _forget_at_exit() -> None:
    with _lock:
        _forget_closed_loops()


async def aclose_shared_client() -> None:
    """Close the running loop's client (e.g. on ASGI shutdown or at the end of a test)."""
    key = id(asyncio.get_running_loop())
    with _lock:
        entry = _clients.pop(key, None)
    if entry is not None:
        await entry.client.aclose()
