"""`db_step`: run a piece of synchronous database work from async code without holding anything.

The step runs on the shared thread pool (no thread per request) and gives its pooled connection
back as soon as it is done, so nothing is held while the caller awaits a provider.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import connection


def _run_released(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    finally:
        if not connection.in_atomic_block:
            connection.close()  # back to the pool: nothing is held across a provider call


async def db_step(fn, *args, **kwargs):
    """Run a database step in the shared thread pool and return the connection at once."""
    return await sync_to_async(_run_released, thread_sensitive=False)(fn, *args, **kwargs)
