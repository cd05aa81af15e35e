"""`PerLoop`: one object per event loop (a client, a writer), made on first use inside that loop.

Connections belong to the loop that opened them. A server runs one loop per worker for its whole
life; `async_to_sync` without a server loop and `asyncio.run()` (tests, commands) make
short-lived ones. When an object is made for a new loop, those of loops that have closed (or
been collected) are dropped and handed to `discard`, which must not need their loop any more.
Thread-safe: each thread may run its own loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    def __init__(self, make: Callable[[], T], discard: Callable[[T], None] | None = None) -> None:
        self._make = make
        self._discard = discard
        self._lock = threading.Lock()
        # id(loop) → (weak reference to the loop, its object); the weak reference says whether an
        # id now reused by another loop is still the same loop.
        self._objects: dict[int, tuple[weakref.ReferenceType[asyncio.AbstractEventLoop], T]] = {}

    def get(self) -> T:
        """The running loop's object (call it inside a coroutine)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._objects.get(id(loop))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            self._drop_closed()
            made = self._make()
            self._objects[id(loop)] = (weakref.ref(loop), made)
            return made

    def pop(self) -> T | None:
        """Forget the running loop's object and return it (the caller closes it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._objects.pop(id(loop), None)
        return entry[1] if entry is not None and entry[0]() is loop else None

    def drop_closed(self) -> None:
        with self._lock:
            self._drop_closed()

    def _drop_closed(self) -> None:
        for key, (ref, made) in list(self._objects.items()):
            loop = ref()
            if loop is None or loop.is_closed():
                del self._objects[key]
                if self._discard is not None:
                    self._discard(made)
