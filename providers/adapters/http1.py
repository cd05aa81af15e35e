"""HTTP/1.1 to providers: the transport under `ProviderClient` (providers/adapters/client.py).

What a provider call needs and no more: a request with a body, the response's status and
headers, its body whole or as it arrives; keep-alive connections pooled per host, TLS with the
system's certificate checks, an HTTP(S)_PROXY (an absolute request target for http://, a CONNECT
tunnel for https://). Responses are parsed by llhttp (httptools, the parser uvicorn serves DAC
with). aiohttp did this before at 0.15-0.25 ms of CPU per exchange, the largest single cost of a
gateway call (docs/performance.md, round 6); this does it in a few dozen microseconds.

Bytes that arrived before a connection broke are handed out before the error: the end of a cut
answer is text the user keeps. Errors are `TransportError` (or the OSError / TimeoutError of the
connection itself); nothing here logs, and a request's headers (its key) never appear in one.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from urllib.parse import SplitResult, quote, unquote, urlsplit

import aiohappyeyeballs
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

DEFAULT_PORTS = {"http": 80, "https": 443}
# What stays as it is in a request target; anything else is percent-encoded (as a browser would).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class TransportError(Exception):
    """The exchange failed: no connection, a broken one, or a response that is not HTTP."""


class InvalidURL(TransportError):
    pass


class BlockedAddress(InvalidURL):
    """The host resolved, when connecting, to an address the client may not call."""


class _Connection(asyncio.Protocol):
    """One connection to a host (or through a proxy to it), one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # What aiohttp's parser let through and hand-made OpenAI-compatible servers send: bare LF
        # line ends, loose header syntax, spaces after a chunk size.
        self.parser.set_dangerous_leniencies(lenient_headers=True, lenient_optional_cr_before_lf=True,
                                             lenient_spaces_after_chunk_size=True)
        self.expiry: asyncio.TimerHandle | None = None  # while idle in the pool
        self.closed = False
        self.tunnel: asyncio.Future | None = None  # the proxy's answer to CONNECT, while awaited
        self._tunnel_head = b""
        self.begin()

    def begin(self) -> None:
        """Ready for the next response."""
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.headers_done = self.complete = self.keep_alive = False
        self.expecting = False  # a request was sent and its response has not ended
        self.interim = False  # reading a 1xx response
        self.spoiled = False  # the server sent a response nobody asked for (a 408 before hanging up)
        self.ends_with_connection = True  # no Content-Length or chunked coding: the body ends at EOF
        self.error: Exception | None = None
        self.waiter: asyncio.Future | None = None

    async def arrival(self) -> None:
        """Until something new happens: headers, body bytes, the end, or an error."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            try:
                self.transport.close()
            except RuntimeError:
                pass  # its event loop has closed, and the connection with it

    # asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self._tunnel_received(data)
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(TransportError(f"malformed HTTP response ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel is not None and not self.tunnel.done():
            self.tunnel.set_exception(TransportError("the proxy closed the connection"))
        if self.headers_done and not self.complete and self.ends_with_connection and exc is None:
            self.on_message_complete()  # a body delimited by the end of the connection
        elif not self.complete:
            self._fail(TransportError("the connection closed before the response ended"))

    # llhttp's callbacks

    def on_message_begin(self) -> None:
        if not self.expecting:
            self.spoiled = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.spoiled:
            return
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self.ends_with_connection = False
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        if self.spoiled:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim response (100 Continue, 103 Early Hints): the answer follows
            self.interim = True
            self.headers = CIMultiDict()
            self.ends_with_connection = True
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.spoiled:
            return
        self.chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self.spoiled:
            return
        if self.interim:
            self.interim = False
            return
        self.complete, self.expecting = True, False
        self._wake()

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _tunnel_received(self, data: bytes) -> None:
        self._tunnel_head += data
        head, found, rest = self._tunnel_head.partition(b"\r\n\r\n")
        if not found or self.tunnel.done():
            return
        parts = head.split(b" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if not 200 <= status < 300:
            self.tunnel.set_exception(TransportError(f"the proxy refused the tunnel (HTTP {status or '?'})"))
        elif rest:  # nothing may follow the proxy's consent before TLS starts
            self.tunnel.set_exception(TransportError("the proxy sent data after its answer to CONNECT"))
        else:
            self.tunnel.set_result(None)


class Response:
    """A response whose headers have arrived; its body is read with `read` or `chunks`. The
    connection goes back to the pool once the body has been read to its end; `close` (or leaving
    the client's `async with`) otherwise closes it."""

    def __init__(self, pool: _Pool, key: tuple, connection: _Connection, read_timeout: float | None) -> None:
        self._pool, self._key, self._connection, self._read_timeout = pool, key, connection, read_timeout
        self.status = connection.status
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(connection.headers)
        self._released = False

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; every wait for more is bounded by the read timeout.
        If the connection breaks, what arrived before is yielded before the error is raised."""
        connection = self._connection
        while not self._released:  # once released, the connection may be serving another exchange
            while connection.chunks:
                yield connection.chunks.popleft()
            if connection.complete:
                self._release(reusable=self._pool.reusable(connection))
                return
            if connection.error is not None:
                self._release(reusable=False)
                raise connection.error
            if self._read_timeout is None:
                await connection.arrival()
            else:
                async with asyncio.timeout(self._read_timeout):
                    await connection.arrival()

    def close(self) -> None:
        self._release(reusable=False)

    def _release(self, *, reusable: bool) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._key, self._connection, reusable)


class _Pool:
    """Idle keep-alive connections per (scheme, host, port, proxy), each closed after
    `keepalive_seconds` unused, and a bound on connections in use."""

    def __init__(self, max_connections: int, keepalive_seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.idle: dict[tuple, list[_Connection]] = {}
        self.slots = asyncio.Semaphore(max_connections)
        self.keepalive_seconds = keepalive_seconds
        self.open: set[_Connection] = set()

    def take_idle(self, key: tuple) -> _Connection | None:
        idle = self.idle.get(key)
        while idle:
            connection = idle.pop()
            connection.expiry.cancel()
            if not (connection.closed or connection.spoiled or connection.transport.is_closing()):
                return connection
            self.drop(connection)
        return None

    def reusable(self, connection: _Connection) -> bool:
        return connection.keep_alive and not (connection.closed or connection.spoiled)

    def release(self, key: tuple, connection: _Connection, reusable: bool) -> None:
        self.slots.release()
        if not reusable:
            self.drop(connection)
            return
        connection.begin()
        self.idle.setdefault(key, []).append(connection)
        connection.expiry = self.loop.call_later(self.keepalive_seconds, self._expire, key, connection)

    def _expire(self, key: tuple, connection: _Connection) -> None:
        idle = self.idle.get(key, [])
        if connection in idle:
            idle.remove(connection)
        if not idle:
            self.idle.pop(key, None)
        self.drop(connection)

    def drop(self, connection: _Connection) -> None:
        if connection.expiry is not None:
            connection.expiry.cancel()
        connection.close()
        self.open.discard(connection)

    def close_all(self) -> None:
        for connection in list(self.open):
            self.drop(connection)
        self.idle.clear()


class Http1Client:
    """The pool and the exchanges of one event loop (made inside it)."""

    def __init__(self, *, max_connections: int, keepalive_seconds: float, user_agent: str,
                 address_allowed: Callable[[str], bool] | None = None) -> None:
        """`address_allowed(ip)` is asked, for a request with `check_addresses`, of every address
        the host resolves to when a connection to it is opened (not to a proxy): one it refuses
        fails the request (BlockedAddress)."""
        self._pool = _Pool(max_connections, keepalive_seconds)
        self._user_agent = user_agent
        self._tls: ssl.SSLContext | None = None
        self._address_allowed = address_allowed

    async def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes | None,
                      connect_timeout: float | None, read_timeout: float | None, proxy: str | None,
                      check_addresses: bool = False) -> Response:
        """Send a request and wait for the response's headers, through `proxy` if given (a proxy
        URL). `connect_timeout` bounds the wait for a free connection and connecting;
        `read_timeout` the wait for the headers. `check_addresses`: see __init__ (its connections
        are pooled apart from unchecked ones)."""
        target = _parse(url)
        via = _parse(proxy) if proxy else None
        check = check_addresses and self._address_allowed is not None
        key = (target.scheme, target.hostname, target.port, proxy, check)
        request = self._request_bytes(method, target, via, headers, body)
        acquired, connection = False, None
        try:
            async with asyncio.timeout(connect_timeout):
                await self._pool.slots.acquire()
                acquired = True
                connection = self._pool.take_idle(key) or await self._connect(target, via, check)
            connection.expecting = True
            connection.transport.write(request)
            async with asyncio.timeout(read_timeout):
                while not connection.headers_done:
                    if connection.error is not None:
                        raise connection.error
                    await connection.arrival()
        except BaseException:
            if acquired:
                self._pool.slots.release()
            if connection is not None:
                self._pool.drop(connection)
            raise
        return Response(self._pool, key, connection, read_timeout)

    def close(self) -> None:
        self._pool.close_all()

    def _request_bytes(self, method: str, target: SplitResult, via: SplitResult | None,
                       headers: dict[str, str], body: bytes | None) -> bytes:
        path = quote(target.path or "/", safe=_PATH_SAFE) + (f"?{quote(target.query, safe=_QUERY_SAFE)}" if target.query else "")
        host = _host_header(target)
        through_proxy = via is not None and target.scheme == "http"  # https goes through a tunnel
        if through_proxy:
            path = f"http://{host}{path}"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"User-Agent: {self._user_agent}", "Accept: */*",
                 "Accept-Encoding: identity"]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        if through_proxy and via.username:
            lines.append(f"Proxy-Authorization: {_basic(via)}")
        for name, value in headers.items():
            if any(c in name or c in value for c in "\r\n\0"):
                raise TransportError(f"the request header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise TransportError("a request header is not Latin-1 text") from None
        return head + body if body else head

    async def _connect(self, target: SplitResult, via: SplitResult | None, check: bool) -> _Connection:
        tls = self._tls_context() if target.scheme == "https" else None
        if via is None:
            return await self._open(target, check=check)
        connection = await self._open(via)
        if tls is None:
            return connection  # http:// through the proxy: absolute request targets
        # https:// through the proxy: CONNECT, then TLS to the provider inside the tunnel.
        try:
            loop = asyncio.get_running_loop()
            connection.tunnel = loop.create_future()
            authority = _host_header(target, always_port=True)
            lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
            if via.username:
                lines.append(f"Proxy-Authorization: {_basic(via)}")
            connection.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            try:
                await connection.tunnel
            finally:
                connection.tunnel = None
            connection.transport = await loop.start_tls(connection.transport, connection, tls, server_hostname=target.hostname)
        except BaseException:
            self._pool.drop(connection)
            raise
        return connection

    async def _open(self, address: SplitResult, *, check: bool = False) -> _Connection:
        """A connection to `address` (TLS when it is https://), counted among the pool's. Its
        addresses are tried the Happy Eyeballs way (RFC 8305, aiohappyeyeballs, as aiohttp does):
        a host whose IPv6 route is black-holed is reached over IPv4 after 250 ms, not after the
        whole connect timeout (uvloop's create_connection tries one address after another).
        `check`: the addresses resolved here are the ones connected to, so they are what
        `address_allowed` must pass (a DNS answer that changed since an earlier check cannot slip
        through)."""
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if address.scheme == "https" else None
        addresses = await loop.getaddrinfo(address.hostname, address.port, type=socket.SOCK_STREAM)
        if check:
            refused = sorted({info[4][0] for info in addresses if not self._address_allowed(info[4][0])})
            if refused:
                raise BlockedAddress(f"{address.hostname} resolves to {', '.join(refused)}, which may not be called")
        sock = await aiohappyeyeballs.start_connection(addresses, happy_eyeballs_delay=0.25, interleave=1)
        try:
            _, connection = await loop.create_connection(
                _Connection, sock=sock, ssl=tls, server_hostname=address.hostname if tls else None)
        except BaseException:
            sock.close()
            raise
        self._pool.open.add(connection)
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


def _parse(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"{exc}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidURL("the URL must be http(s)://host/...")
    if port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{DEFAULT_PORTS[parts.scheme]}")
    return parts


def _host_header(parts: SplitResult, *, always_port: bool = False) -> str:
    if ":" in parts.hostname:
        host = f"[{parts.hostname}]"
    else:
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL(f"{parts.hostname!r} is not a valid host name") from None
    if always_port or parts.port != DEFAULT_PORTS[parts.scheme]:
        return f"{host}:{parts.port}"
    return host


def _basic(proxy: SplitResult) -> str:
    credentials = f"{unquote(proxy.username or '')}:{unquote(proxy.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
