"""Login brute-force throttle: failures counted per email and per client address in Redis, so
every worker sees the same counts. Past the limit, logins are refused for the rest of the
window without even checking the password. While Redis is down each worker counts on its own
(in process), so an outage never switches the throttle off."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_local: dict[str, tuple[int, float]] = {}  # key → (failures, window end), used while Redis is down
_local_lock = threading.Lock()


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return cache.make_key(f"dac:login-fail:{kind}:{digest}")


def _keys(email: str, address: str) -> tuple[str, str]:
    return _key("email", email or ""), _key("addr", address or "")


def _redis():
    return get_redis_connection("default")


def _local_count(key: str) -> int:
    with _local_lock:
        count, until = _local.get(key, (0, 0.0))
        return count if until > time.monotonic() else 0


def _local_add(key: str) -> None:
    now = time.monotonic()
    with _local_lock:
        count, until = _local.get(key, (0, 0.0))
        if until <= now:
            count, until = 0, now + settings.DAC_LOGIN_WINDOW_SECONDS
        _local[key] = (count + 1, until)
        if len(_local) > 100_000:
            _local.clear()


def login_blocked(*, email: str, address: str) -> bool:
    email_key, address_key = _keys(email, address)
    try:
        email_fails, address_fails = (int(v or 0) for v in _redis().mget([email_key, address_key]))
    except RedisError:
        email_fails, address_fails = 0, 0
    email_fails = max(email_fails, _local_count(email_key))
    address_fails = max(address_fails, _local_count(address_key))
    return email_fails >= settings.DAC_LOGIN_MAX_FAILURES or address_fails >= settings.DAC_LOGIN_MAX_FAILURES * 4


def login_failed(*, email: str, address: str) -> None:
    keys = _keys(email, address)
    try:
        pipe = _redis().pipeline()
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, settings.DAC_LOGIN_WINDOW_SECONDS, nx=True)
        pipe.execute()
    except RedisError:
        logger.warning("login throttle: Redis unavailable, counting failures in this process")
        for key in keys:
            _local_add(key)


def login_succeeded(*, email: str) -> None:
    key = _key("email", email or "")
    with _local_lock:
        _local.pop(key, None)
    try:
        _redis().delete(key)
    except RedisError:
        pass
