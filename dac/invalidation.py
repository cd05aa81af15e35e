"""Forgetting, in every worker at once, what one worker changed: the per-process caches of API
tokens (tenants/services.py) and of per-org settings (dac/org_cache.py).

Each worker keeps a few seconds' copy of what every call reads (DAC_TOKEN_CACHE_SECONDS,
DAC_SETTINGS_CACHE_SECONDS). The worker that changes one (a token revoked, a provider key
replaced, a limit set) forgets its own copy at once and, once the transaction commits,
`announce`s it on a Redis channel; every worker's `listen` task, on its serving loop (started by
the ASGI lifespan, dac/asgi.py), forgets the entry as soon as the message arrives. Nothing on a
call's path waits for Redis here. When Redis cannot be reached an announcement is lost, and a
listener that lost its connection forgets everything once it is back: the caches' own expiry
remains the bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction

logger = logging.getLogger("dac.invalidation")

RETRY_SECONDS = 1.0
# What each kind of announcement forgets: kind → forget(argument); "" forgets everything.
_forgetters: dict[str, Callable[[str], None]] = {}
_publisher: redis.Redis | None = None


def channel() -> str:
    """One deployment's channel: DACs sharing a Redis (and test runs) keep to their own."""
    return f"dac:{settings.CACHES['default'].get('KEY_PREFIX', '')}:forget"


def on_announcement(kind: str, forget: Callable[[str], None]) -> None:
    """Have `forget(argument)` run in this worker when any worker announces `kind:argument`
    (and `forget("")` when announcements may have been missed)."""
    _forgetters[kind] = forget


def announce(kind: str, argument: str = "") -> None:
    """Tell every worker to forget `kind:argument`, once the current transaction commits (other
    workers would otherwise load the old rows again)."""
    transaction.on_commit(lambda: _publish(f"{kind}:{argument}"))


def _publish(message: str) -> None:
    global _publisher
    try:
        if _publisher is None:
            _publisher = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=0.5)
        _publisher.publish(channel(), message)
    except redis.RedisError as exc:
        logger.warning("could not tell the other workers to forget %s (%s): their copies expire by themselves", message,
                       type(exc).__name__)


def _forget(message: str) -> None:
    kind, _, argument = message.partition(":")
    forget = _forgetters.get(kind)
    if forget is not None:
        forget(argument)


def _forget_everything() -> None:
    for forget in _forgetters.values():
        forget("")


async def listen(ready: asyncio.Event | None = None) -> None:
    """Forget what the workers announce, until cancelled; `ready` is set once subscribed."""
    lost = False
    while True:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel())
                if lost:  # announcements made meanwhile were missed
                    _forget_everything()
                    lost = False
                if ready is not None:
                    ready.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        _forget(message["data"].decode("utf-8", "replace"))
        except (redis.RedisError, OSError) as exc:
            if not lost:
                logger.warning("not hearing the other workers' changes (%s): retrying every %.0f s", type(exc).__name__,
                               RETRY_SECONDS)
            lost = True
            await asyncio.sleep(RETRY_SECONDS)
        finally:
            await client.aclose()
