"""`PerOrgCache`: a few seconds' in-process copy of per-org settings read on every provider call
(active keys, routing settings, the context window), so a call does not query them each time.

Saving or deleting a row of one of the watched models forgets that org's entry in this process
at once, and again when the transaction commits, when every other worker is told to forget it
too (dac/invalidation.py); without Redis they see the change within DAC_SETTINGS_CACHE_SECONDS,
or the setting named by `ttl_setting` (the quota limits: DAC_QUOTA_LIMITS_CACHE_SECONDS). Cached
values are shared between requests: treat them as read-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from dac import invalidation

T = TypeVar("T")


_caches: list[PerOrgCache] = []


def _forget_org(argument: str) -> None:
    """An org's entries in every cache of this process ("": every entry)."""
    for cache in _caches:
        if argument:
            cache.forget(int(argument))
        else:
            cache.clear()


invalidation.on_announcement("org", _forget_org)


class PerOrgCache(Generic[T]):
    def __init__(self, name: str, *models, ttl_setting: str = "DAC_SETTINGS_CACHE_SECONDS") -> None:
        self._entries: dict[int, tuple[float, T]] = {}
        self._ttl_setting = ttl_setting
        _caches.append(self)
        for model in models:
            for signal in (post_save, post_delete):
                signal.connect(self._changed, sender=model, weak=False, dispatch_uid=f"dac.org_cache.{name}.{model.__name__}.{id(signal)}")

    def get(self, org_id: int, load: Callable[[], T]) -> T:
        now = time.monotonic()
        hit = self._entries.get(org_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[org_id] = (now + getattr(settings, self._ttl_setting), value)
        return value

    def cached(self, org_id: int, default: T | None = None) -> T | None:
        """The entry if it is there and fresh, else `default`: never loads (for async code, which
        takes the database path only on a miss)."""
        hit = self._entries.get(org_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return default

    def forget(self, org_id: int) -> None:
        self._entries.pop(org_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def _changed(self, sender, instance, **kwargs) -> None:
        # An Organization is its own org; every other watched model belongs to one.
        org_id = instance.org_id if hasattr(instance, "org_id") else instance.pk
        self.forget(org_id)
        transaction.on_commit(lambda: self.forget(org_id))
        invalidation.announce("org", str(org_id))
