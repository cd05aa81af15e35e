"""Text a provider sent before its connection broke reaches the caller before the error.

When the rest of the body and the end of the connection both arrive while the reader is busy,
aiohttp on its own raises the broken-body error ahead of the bytes it had already buffered: the
last words of a cut answer were lost (seen once as 'one ' instead of 'one two ' in the
reliability suite, on a loaded machine). Runs under uvloop, as uvicorn does.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from providers.adapters import ProviderError, aclose_shared_client, get_adapter
from tests.fakes.helpers import KEY, MESSAGES


def _event(text: str) -> bytes:
    data = ('data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":"%s"},"finish_reason":null}]}\n\n' % text).encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _serve_two_deltas_then_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + _event("one "))
    await writer.drain()
    await asyncio.sleep(0.02)
    writer.write(_event("two "))
    await writer.drain()
    writer.close()  # the chunked body is never terminated: the connection just ends


async def _stream_until_it_breaks() -> list[tuple[str, str]]:
    server = await asyncio.start_server(_serve_two_deltas_then_end, "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    outcomes = []
    try:
        for _ in range(3):
            received = []
            try:
                async for piece in get_adapter("openai_compatible", api_key=KEY, base_url=base_url).stream(messages=MESSAGES, model="m"):
                    received.append(piece.delta)
                    # A busy reader: "two " and the end of the connection arrive meanwhile.
                    await asyncio.sleep(0.1)
                outcomes.append(("".join(received), "no error"))
            except ProviderError as error:
                outcomes.append(("".join(received), error.category))
    finally:
        server.close()
        await aclose_shared_client()
    return outcomes


def test_text_received_before_a_connection_breaks_is_delivered_before_the_error():
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcomes = runner.run(_stream_until_it_breaks())
    assert outcomes == [("one two ", "unavailable")] * 3
