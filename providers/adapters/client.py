"""One shared provider client per process and per running event loop.

Reusing a client keeps connections to providers alive between calls, which saves a TLS handshake
(tens of milliseconds) on every request. A client is bound to the loop that made it, so each loop
gets its own: ASGI servers run one long-lived loop per worker, while `async_to_sync` and
`asyncio.run()` in tests and commands create short-lived ones. Entries for loops that have closed
or been garbage-collected are dropped when the next client is made (dac/per_loop.py).

The transport is providers/adapters/http1.py (HTTP/1.1 parsed by llhttp). httpx cost 0.35-0.45 ms
of CPU a call and aiohttp, used before, 0.15-0.25 ms (docs/performance.md). What the client keeps:

- no cookies are kept: the client is shared by every org, and a cookie one org's call received
  (a provider's or a custom endpoint's session) must never ride along on another org's call;
- redirects are not followed: a redirect means a wrong base URL, not something to chase;
- for an org's own base URL (`check_addresses`), the addresses a host resolves to when connecting
  must be public unless the operator allows private base URLs (providers/urlsafety.py): the
  base URL's own check alone could be rebound;
- HTTP(S)_PROXY / ALL_PROXY / NO_PROXY are read from the environment when the client is made;
- bytes received before a connection broke are delivered before the error (`received_text`):
  the last words of a cut answer are text the user keeps.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import json
import typing
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from multidict import CIMultiDictProxy

from dac.per_loop import PerLoop
from providers.urlsafety import address_allowed

from .http1 import Http1Client, Response, TransportError

DEFAULT_MAX_CONNECTIONS = 2000
USER_AGENT = "DAC-gateway/1.0"
KEEPALIVE_SECONDS = 30.0
# What a failed exchange with a provider raises: the transport's errors, the connection's own
# (refused, reset, DNS, TLS: all OSError) and timeouts.
TRANSPORT_ERRORS = (TransportError, OSError, TimeoutError)


@dataclass(frozen=True)
class Reply:
    """A whole response: status, headers (case-insensitive) and body."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers), errors="replace")


class ProviderClient:
    def __init__(self) -> None:
        self._proxies = getproxies_environment()
        self.http = Http1Client(max_connections=_max_connections(), keepalive_seconds=KEEPALIVE_SECONDS, user_agent=USER_AGENT,
                                address_allowed=address_allowed)

    async def send(self, method: str, url: str, *, headers: dict[str, str], body: dict | None = None, timeout: float,
                   check_addresses: bool = False) -> Reply:
        """One whole exchange, `timeout` its deadline; `check_addresses`: a URL of an org's own
        (the addresses connected to must be allowed)."""
        async with asyncio.timeout(timeout):
            response = await self.http.request(method, url, headers=headers, body=_encoded(body), connect_timeout=None,
                                               read_timeout=None, proxy=self._proxy(url), check_addresses=check_addresses)
            try:
                return Reply(response.status, response.headers, await response.read())
            finally:
                response.close()  # a no-op once the body was read to its end

    @contextlib.asynccontextmanager
    async def stream(self, url: str, *, headers: dict[str, str], body: dict, timeout: float,
                     check_addresses: bool = False) -> typing.AsyncIterator[Response]:
        """POST whose response is read as it arrives: `timeout` bounds connecting and each wait
        for data (the headers, every gap between chunks), not the whole answer."""
        response = await self.http.request("POST", url, headers=headers, body=_encoded(body), connect_timeout=timeout,
                                           read_timeout=timeout, proxy=self._proxy(url), check_addresses=check_addresses)
        try:
            yield response
        finally:
            response.close()

    def _proxy(self, url: str) -> str | None:
        return environment_proxy(url, self._proxies)


def environment_proxy(url: str, proxies: dict[str, str]) -> str | None:
    """The proxy `proxies` (as `getproxies_environment()` reads HTTP(S)_PROXY, ALL_PROXY) send
    `url` through, or None (none set, or NO_PROXY names its host)."""
    if not proxies:
        return None
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy is None or proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy


def _encoded(body: dict | None) -> bytes | None:
    return None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


async def received_text(response: Response) -> typing.AsyncIterator[str]:
    """The body as text as it arrives; if the connection breaks, what was received before the
    break is delivered first and then the error is raised."""
    decoder = codecs.getincrementaldecoder(_charset(response.headers))(errors="replace")
    async for chunk in response.chunks():
        yield decoder.decode(chunk)
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def _charset(headers: typing.Mapping[str, str]) -> str:
    for param in headers.get("Content-Type", "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            try:
                return codecs.lookup(value.strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _detach(client: ProviderClient) -> None:
    """A client whose loop has closed: forget its connections."""
    client.http.close()


_clients: PerLoop[ProviderClient] = PerLoop(ProviderClient, discard=_detach)


def shared_client() -> ProviderClient:
    """The client for the running loop, made on first use (must be called inside a coroutine)."""
    return _clients.get()


def _max_connections() -> int:
    """DAC_PROVIDER_MAX_CONNECTIONS (calls in flight to providers, per process); the adapters also
    run without Django (their unit tests, the conformance check), and then take the default."""
    try:
        return settings.DAC_PROVIDER_MAX_CONNECTIONS
    except ImproperlyConfigured:
        return DEFAULT_MAX_CONNECTIONS


atexit.register(_clients.drop_closed)


async def aclose_shared_client() -> None:
    """Close the running loop's client (e.g. on ASGI shutdown or at the end of a test)."""
    client = _clients.pop()
    if client is not None:
        client.http.close()
