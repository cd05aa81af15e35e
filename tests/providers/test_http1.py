"""The provider client's HTTP/1.1 transport (providers/adapters/http1.py) against raw servers that
answer the way real ones sometimes do: bodies ended by closing, a 408 sent to an idle connection,
interim 1xx responses, bare LF line ends, garbage instead of HTTP, a proxy asked for a tunnel,
more calls than connections allowed, connections left idle."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time

import pytest

from providers.adapters.http1 import BlockedAddress, Http1Client, InvalidURL, TransportError

pytestmark = pytest.mark.asyncio


def _client(max_connections: int = 10, keepalive_seconds: float = 30.0) -> Http1Client:
    return Http1Client(max_connections=max_connections, keepalive_seconds=keepalive_seconds, user_agent="test")


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return head


async def _serve(handle):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def _serving(handle, **client_options):
    """A raw server running `handle` and a client: (client, the server's URL); both closed after."""
    server, url = await _serve(handle)
    client = _client(**client_options)
    try:
        yield client, url
    finally:
        client.close()
        server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _ok_to_each_request(reader, writer):
    while True:
        try:
            await _read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(OK)
        await writer.drain()


async def _get(client: Http1Client, url: str, **kwargs):
    return await client.request("GET", url, **{"headers": {}, "body": None, "connect_timeout": 5, "read_timeout": 5, "proxy": None, **kwargs})


async def test_a_body_ended_by_closing_the_connection_is_read_whole():
    async def handle(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"a\":")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b" 1}")
        writer.close()

    async with _serving(handle) as (client, url):
        response = await client.request("POST", url + "/v1/x", headers={}, body=b"{}", connect_timeout=5, read_timeout=5, proxy=None)
        assert response.status == 200 and response.headers["content-type"] == "application/json"
        assert await response.read() == b'{"a": 1}'


async def test_sequential_requests_share_a_connection_and_a_408_on_an_idle_one_is_not_taken_for_an_answer():
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()
        if len(connections) == 1:
            await _read_request(reader)
            writer.write(OK)
            await writer.drain()
            # Then the server gives up on the idle connection, saying so first.
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async with _serving(handle) as (client, url):
        for _ in range(2):
            response = await _get(client, url + "/")
            assert await response.read() == b"ok"
        assert len(connections) == 1
        await asyncio.sleep(0.05)  # the 408 arrives while the connection is idle
        response = await _get(client, url + "/")
        assert response.status == 200 and await response.read() == b"ok"
        assert len(connections) == 2


async def test_what_is_not_http_fails_the_request():
    async def handle(reader, writer):
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async with _serving(handle) as (client, url):
        with pytest.raises(TransportError, match="malformed"):
            await _get(client, url + "/")


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    client = _client()
    with pytest.raises(TransportError, match="line break"):
        await _get(client, "http://127.0.0.1:9/", headers={"Authorization": "Bearer x\r\nX-Evil: 1"})
    with pytest.raises(InvalidURL):
        await _get(client, "ftp://127.0.0.1/")


async def test_https_through_a_proxy_asks_it_for_a_tunnel():
    seen = []

    async def proxy(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with _serving(proxy) as (client, proxy_url):
        with pytest.raises(TransportError, match="refused the tunnel \\(HTTP 403\\)"):
            await client.request("POST", "https://api.example.com/v1/chat/completions", headers={"Authorization": "Bearer k"},
                                 body=b"{}", connect_timeout=5, read_timeout=5, proxy=proxy_url.replace("://", "://u:p%40ss@"))
        head = seen[0].decode()
        assert head.startswith("CONNECT api.example.com:443 HTTP/1.1\r\n")
        assert "Proxy-Authorization: Basic dTpwQHNz" in head  # u:p@ss
        assert "Bearer k" not in head  # the provider's key only goes inside the tunnel


async def test_calls_beyond_the_connection_limit_wait_for_one_to_be_free():
    in_flight, most = 0, 0

    async def handle(reader, writer):
        nonlocal in_flight, most
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1
            writer.write(OK)
            await writer.drain()

    async def call():
        response = await _get(client, url + "/")
        return await response.read()

    async with _serving(handle, max_connections=2) as (client, url):
        assert await asyncio.gather(*(call() for _ in range(6))) == [b"ok"] * 6
        assert most == 2


async def test_interim_responses_and_bare_line_feeds_are_read_past():
    seen = []

    async def handle(reader, writer):
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\nok")
        await writer.drain()

    async with _serving(handle) as (client, url):
        response = await _get(client, url + "/v1/a b")
        assert response.status == 200 and "link" not in response.headers and await response.read() == b"ok"
        assert seen[0].startswith(b"GET /v1/a%20b HTTP/1.1\r\n")


async def test_a_refused_tunnel_leaves_no_connection_open_and_an_idle_one_is_closed_in_time():
    async def proxy(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 5\r\n\r\nlogin")
        await writer.drain()

    async with _serving(proxy) as (client, proxy_url):
        with pytest.raises(TransportError, match="HTTP 407"):
            await _get(client, "https://api.example.com/", proxy=proxy_url)
        assert client._pool.open == set()

    async with _serving(_ok_to_each_request, keepalive_seconds=0.05) as (client, url):
        response = await _get(client, url + "/")
        assert await response.read() == b"ok"
        assert len(client._pool.open) == 1
        await asyncio.sleep(0.15)
        assert client._pool.open == set() and client._pool.idle == {}


def _certificates(tmp_path) -> tuple[str, ssl.SSLContext]:
    """A CA (its file, for SSL_CERT_FILE) and a server context for localhost signed by it."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DAC test CA")])
    ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name,
                         server_key.public_key(), ca_key, ca=False)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return str(ca_file), context


async def _tunnel(reader, writer):
    """A CONNECT proxy: opens the asked-for connection, says 200, then relays both ways."""
    host, _, port = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[1].decode().rpartition(":")
    upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def relay(source, sink):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        sink.close()

    await asyncio.gather(relay(reader, upstream_writer), relay(upstream_reader, writer), return_exceptions=True)


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "connect-tunnel"])
async def test_https_checks_the_certificate_and_works_directly_and_through_a_tunnel(tmp_path, monkeypatch, through_proxy):
    ca_file, server_context = _certificates(tmp_path)

    async def handle(reader, writer):
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"tls\": 1}\n")
        await writer.drain()

    seen = []
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/models"
    proxy_server, proxy_url = await _serve(_tunnel) if through_proxy else (None, None)
    try:
        untrusting = _client()  # the system's CAs do not know the test CA: refused, not hung
        with pytest.raises(ssl.SSLCertVerificationError):
            await _get(untrusting, url, proxy=proxy_url)
        untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        client = _client()
        response = await _get(client, url, headers={"Authorization": "Bearer k"}, proxy=proxy_url)
        assert response.status == 200 and await response.read() == b'{"tls": 1}\n'
        assert seen[-1].startswith(b"GET /v1/models HTTP/1.1\r\n") and b"Host: localhost:" in seen[-1]
        client.close()
    finally:
        server.close()
        if proxy_server is not None:
            proxy_server.close()


async def test_an_address_that_never_answers_is_raced_by_the_next_one(monkeypatch):
    """A host with two addresses, the first black-holed (a listening socket whose backlog is full
    drops the SYN): the second is tried after 250 ms, not after the whole connect timeout."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue; further connects hang
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(hole.getsockname())
        fillers.append(filler)

    server, url = await _serve(_ok_to_each_request)
    good = ("127.0.0.1", server.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()

    async def two_addresses(host, port, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", hole.getsockname()), (socket.AF_INET, socket.SOCK_STREAM, 6, "", good)]

    monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
    client = _client()
    try:
        started = time.monotonic()
        response = await _get(client, "http://provider.example/", connect_timeout=10)
        assert await response.read() == b"ok"
        assert time.monotonic() - started < 3
    finally:
        client.close()
        server.close()
        for sock in (hole, *fillers):
            sock.close()


async def test_a_checked_request_refuses_a_host_whose_addresses_are_not_allowed_and_pools_apart():
    """`check_addresses` asks `address_allowed` of what the host resolves to when connecting:
    a refused address fails the request before anything is sent; unchecked requests (and their
    pooled connections) are not affected."""
    arrived = []

    async def handle(reader, writer):
        arrived.append(await _read_request(reader))
        writer.write(OK)
        await writer.drain()

    server, url = await _serve(handle)
    asked = []
    client = Http1Client(max_connections=10, keepalive_seconds=30.0, user_agent="test",
                         address_allowed=lambda address: asked.append(address) or False)
    try:
        assert (await (await _get(client, url)).read()) == b"ok"  # unchecked: connects, nothing asked
        with pytest.raises(BlockedAddress, match="resolves to 127.0.0.1, which may not be called"):
            await _get(client, url, check_addresses=True)  # the idle unchecked connection is not reused
        assert asked == ["127.0.0.1"] and len(arrived) == 1
    finally:
        client.close()
        server.close()
