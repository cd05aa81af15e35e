"""One shared provider client (an aiohttp.ClientSession) per process and per running event loop.

Reusing a session keeps TLS connections to providers alive between calls, which saves a
handshake (tens of milliseconds) on every request. A session is bound to the loop that made it,
so each loop gets its own: ASGI servers run one long-lived loop per worker, while
`async_to_sync` and `asyncio.run()` in tests and commands create short-lived ones. Entries for
loops that have closed or been garbage-collected are dropped when the next client is made
(dac/per_loop.py).

aiohttp is used directly. httpcore's pool walked every pooled connection whenever a request
started or ended (half of a worker's CPU with 64 calls in flight), and httpx's request and
response models over aiohttp's pool still cost 0.35-0.45 ms of CPU a call, more than aiohttp's
whole exchange (~0.17 ms; docs/performance.md). What the client adds to aiohttp:

- no cookies are kept: the session is shared by every org, and a cookie one org's call received
  (a provider's or a custom endpoint's session) must never ride along on another org's call;
- redirects are not followed: a redirect means a wrong base URL, not something to chase;
- HTTP(S)_PROXY / ALL_PROXY / NO_PROXY are read from the environment when the client is made
  (not ~/.netrc, which aiohttp's `trust_env` would also read);
- bytes received before a connection broke are delivered before the error (`received_text`):
  aiohttp raises a broken stream's error ahead of what it had already buffered, which would
  drop the last words of a cut answer (text the user keeps).
"""

from __future__ import annotations

import atexit
import codecs
import json
import typing
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import aiohttp
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from multidict import CIMultiDictProxy

from dac.per_loop import PerLoop

DEFAULT_MAX_CONNECTIONS = 2000
USER_AGENT = "DAC-gateway/1.0"
KEEPALIVE_SECONDS = 30.0
# What a failed exchange with a provider raises (aiohttp's timeouts are TimeoutErrors).
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


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
        connector = aiohttp.TCPConnector(limit=_max_connections(), limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS)
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=30.0),  # every call passes its own; this is only a backstop
        )
        self._proxies = getproxies_environment()

    async def send(self, method: str, url: str, *, headers: dict[str, str], body: dict | None = None, timeout: float) -> Reply:
        """One whole exchange, `timeout` its deadline."""
        async with self._request(method, url, headers, body, aiohttp.ClientTimeout(total=timeout)) as response:
            return Reply(response.status, response.headers, await response.read())

    def stream(self, url: str, *, headers: dict[str, str], body: dict, timeout: float) -> typing.AsyncContextManager[aiohttp.ClientResponse]:
        """POST whose response is read as it arrives: `timeout` bounds connecting and each wait
        for data (the headers, every gap between chunks), not the whole answer."""
        return self._request("POST", url, headers, body, aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout))

    def _request(self, method: str, url: str, headers: dict[str, str], body: dict | None, timeout: aiohttp.ClientTimeout):
        data = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        return self.session.request(method, url, headers=headers, data=data, timeout=timeout, allow_redirects=False, proxy=self._proxy(url))

    def _proxy(self, url: str) -> str | None:
        if not self._proxies:
            return None
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if proxy is None or proxy_bypass_environment(parts.hostname or "", self._proxies):
            return None
        return proxy


async def received_text(response: aiohttp.ClientResponse) -> typing.AsyncIterator[str]:
    """The body as text as it arrives; if the connection breaks, what was received before the
    break is delivered first and then the error is raised."""
    decoder = codecs.getincrementaldecoder(_charset(response.headers))(errors="replace")
    content = response.content
    try:
        async for chunk in content.iter_any():
            yield decoder.decode(chunk)
    except aiohttp.ClientError:
        received = b"".join(getattr(content, "_buffer", ()))  # aiohttp's bytes not read yet
        if received:
            yield decoder.decode(received)
        raise
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
    """A client whose loop has closed: its connections died with the loop and cannot be closed
    cleanly any more; the session and pool are only marked closed, so that they are freed
    without "Unclosed client session" errors in the log."""
    connector = client.session.connector
    client.session.detach()
    if connector is not None:
        connector._close()  # on a closed loop this only marks it closed


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
        await client.session.close()
