"""One shared httpx.AsyncClient per process and per running event loop.

Reusing a client keeps TLS connections to providers alive between calls, which saves a handshake
(tens of milliseconds) on every request. An AsyncClient is bound to the loop that first used it,
so each loop gets its own: ASGI servers run one long-lived loop per worker, while `async_to_sync`
and `asyncio.run()` in tests and commands create short-lived ones. Entries for loops that have
closed or been garbage-collected are dropped when the next client is made (dac/per_loop.py).

The client speaks httpx's API over aiohttp's connection pool (httpx-aiohttp's transport).
httpcore's own pool walks every pooled connection, probing each socket, whenever a request
starts or ends: with 64 calls in flight that was half of a worker's CPU (docs/performance.md).
aiohttp's pool hands out an idle connection in constant time. Four things are adjusted on top
of httpx-aiohttp (`ProviderTransport`):

- no cookies are kept: the client is shared by every org, and a cookie one org's call received
  (a provider's or a custom endpoint's session) must never ride along on another org's call;
- bytes received before a connection broke are delivered before the error: aiohttp raises a
  broken stream's error ahead of what it had already buffered, which would drop the last words
  of a cut answer (text the user keeps);
- HTTP(S)_PROXY / NO_PROXY are honoured as httpx does, through the same transport;
- errors come out as httpx's, named for what happened, so the adapters know only httpx.
"""

from __future__ import annotations

import atexit
import contextlib
import typing
from http.cookiejar import CookieJar, DefaultCookiePolicy

import aiohttp
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from dac.per_loop import PerLoop

DEFAULT_MAX_CONNECTIONS = 2000
_CHUNK_BYTES = 16 * 1024
# httpx's own jar: a policy that accepts no cookie at all.
_NO_COOKIES = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class ProviderTransport(AiohttpTransport):
    """httpx-aiohttp's transport with a cookie-less session and a stream that keeps what arrived."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.client = self._new_session  # made lazily, inside the loop that uses it

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0, keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors():
            response = await super().handle_async_request(request)
        response.stream = _ReceivedFirst(response.stream._aiohttp_response)
        return response


@contextlib.contextmanager
def _httpx_errors() -> typing.Iterator[None]:
    """httpx's exceptions for aiohttp's, named for what happened: httpx-aiohttp reports a refused
    or dropped connection as ConnectTimeout (the provider is unreachable, not slow), and lets the
    aiohttp errors missing from its table through as they are."""
    try:
        with map_aiohttp_exceptions():
            yield
    except httpx.ConnectTimeout as exc:
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientError) and not isinstance(cause, aiohttp.ServerTimeoutError):
            raise httpx.ConnectError(str(exc)) from cause
        raise
    except aiohttp.ClientError as exc:
        raise httpx.NetworkError(str(exc)) from exc


class _ReceivedFirst(httpx.AsyncByteStream):
    """The body as it arrives; if the connection breaks, what was received before the break is
    delivered first and then the error is raised."""

    def __init__(self, aiohttp_response: aiohttp.ClientResponse) -> None:
        self._response = aiohttp_response

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        content = self._response.content
        with _httpx_errors():
            try:
                async for chunk in content.iter_chunked(_CHUNK_BYTES):
                    yield chunk
            except aiohttp.ClientError:
                received = b"".join(getattr(content, "_buffer", ()))  # aiohttp's bytes not read yet
                if received:
                    yield received
                raise

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._response.__aexit__(None, None, None)


class _ProviderClient(httpx.AsyncClient):
    """httpx.AsyncClient whose direct and proxy routes (from the environment) are ProviderTransports."""

    def _init_transport(self, verify=True, cert=None, trust_env=True, http1=True, http2=False,
                        limits=httpx.Limits(), transport=None, **kwargs):
        return transport or ProviderTransport(verify=verify, cert=cert, trust_env=trust_env, limits=limits)

    def _init_proxy_transport(self, proxy, verify=True, cert=None, trust_env=True, http1=True, http2=False,
                              limits=httpx.Limits(), **kwargs):
        return ProviderTransport(verify=verify, cert=cert, trust_env=trust_env, limits=limits, proxy=proxy)


def _new_client() -> httpx.AsyncClient:
    return _ProviderClient(
        limits=httpx.Limits(
            max_connections=_max_connections(),  # calls in flight to providers, per process
            max_keepalive_connections=100,
            keepalive_expiry=30.0,
        ),
        timeout=httpx.Timeout(30.0),  # every call passes its own; this is only a backstop
        follow_redirects=False,  # a redirect means a wrong base URL, not something to chase
        headers={"User-Agent": "DAC-gateway/1.0"},
        cookies=_NO_COOKIES,
    )


def _detach(client: httpx.AsyncClient) -> None:
    """A client whose loop has closed: its connections died with the loop and cannot be closed
    cleanly any more; the aiohttp session and pool are only marked closed, so that they are freed
    without "Unclosed client session" errors in the log."""
    for session in _aiohttp_sessions(client):
        connector = session.connector
        session.detach()
        if connector is not None:
            connector._close()  # on a closed loop this only marks it closed


_clients: PerLoop[httpx.AsyncClient] = PerLoop(_new_client, discard=_detach)


def shared_client() -> httpx.AsyncClient:
    """The client for the running loop, made on first use (must be called inside a coroutine)."""
    return _clients.get()


def _max_connections() -> int:
    """DAC_PROVIDER_MAX_CONNECTIONS; the adapters also run without Django (their unit tests, the
    conformance check), and then take the default."""
    try:
        return settings.DAC_PROVIDER_MAX_CONNECTIONS
    except ImproperlyConfigured:
        return DEFAULT_MAX_CONNECTIONS


def _aiohttp_sessions(client: httpx.AsyncClient) -> list[aiohttp.ClientSession]:
    # httpx 0.28 keeps the default transport and the proxy transports in these two attributes.
    transports = (client._transport, *client._mounts.values())
    return [t.client for t in transports if isinstance(t, AiohttpTransport) and isinstance(t.client, aiohttp.ClientSession)]


atexit.register(_clients.drop_closed)


async def aclose_shared_client() -> None:
    """Close the running loop's client (e.g. on ASGI shutdown or at the end of a test)."""
    client = _clients.pop()
    if client is not None:
        await client.aclose()
