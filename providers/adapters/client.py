"""One shared httpx.AsyncClient per process and per running event loop.

Reusing a client keeps TLS connections to providers alive between calls, which saves a handshake
(tens of milliseconds) on every request. An AsyncClient is bound to the loop that first used it,
so each loop gets its own: ASGI servers run one long-lived loop per worker, while `async_to_sync`
and `asyncio.run()` in tests and commands create short-lived ones. Entries for loops that have
closed or been garbage-collected are dropped when the next client is made.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

import httpx

_LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=30.0)

_lock = threading.Lock()
_clients: dict[int, tuple[weakref.ReferenceType[asyncio.AbstractEventLoop], httpx.AsyncClient]] = {}


def shared_client() -> httpx.AsyncClient:
    """The client for the running loop, made on first use (must be called inside a coroutine)."""
    loop = asyncio.get_running_loop()
    key = id(loop)
    with _lock:
        entry = _clients.get(key)
        # id() values are reused after a loop is freed, so check it is the very same loop.
        if entry is not None and entry[0]() is loop and not entry[1].is_closed:
            return entry[1]
        for other, (ref, _) in list(_clients.items()):
            alive = ref()
            if alive is None or alive.is_closed():
                # Its connections died with their loop; there is nothing left to close cleanly.
                del _clients[other]
        client = httpx.AsyncClient(
            limits=_LIMITS,
            timeout=httpx.Timeout(30.0),  # every call passes its own; this is only a backstop
            follow_redirects=False,  # a redirect means a wrong base URL, not something to chase
            headers={"User-Agent": "DAC-gateway/1.0"},
        )
        _clients[key] = (weakref.ref(loop), client)
        return client


async def aclose_shared_client() -> None:
    """Close the running loop's client (e.g. on ASGI shutdown or at the end of a test)."""
    key = id(asyncio.get_running_loop())
    with _lock:
        entry = _clients.pop(key, None)
    if entry is not None:
        await entry[1].aclose()
