"""Login brute-force throttle: failures counted per email and per client address in the cache
(Redis), so every worker sees the same counts. Past the limit, logins are refused for the
rest of the window without even checking the password."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"dac:login-fail:{kind}:{digest}"


def _keys(email: str, address: str) -> list[str]:
    return [_key("email", email or ""), _key("addr", address or "")]


def login_blocked(*, email: str, address: str) -> bool:
    counts = cache.get_many(_keys(email, address))
    email_fails = counts.get(_key("email", email or ""), 0)
    address_fails = counts.get(_key("addr", address or ""), 0)
    return email_fails >= settings.DAC_LOGIN_MAX_FAILURES or address_fails >= settings.DAC_LOGIN_MAX_FAILURES * 4


def login_failed(*, email: str, address: str) -> None:
    for key in _keys(email, address):
        if cache.add(key, 1, timeout=settings.DAC_LOGIN_WINDOW_SECONDS):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.DAC_LOGIN_WINDOW_SECONDS)


def login_succeeded(*, email: str) -> None:
    cache.delete(_key("email", email or ""))
