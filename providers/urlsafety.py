"""SSRF guard for user-supplied provider base URLs.

A base_url must be http(s) and every address its host resolves to must be public, unless the
operator set DAC_ALLOW_PRIVATE_BASE_URLS (a local Ollama or vLLM needs it). Checked when a key
is saved and again before each call, so a DNS answer that changed later is caught too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings

from dac.errors import ValidationFailed


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def validate_base_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        return ""
    if len(url) > 500:
        raise ValidationFailed("base_url is too long (500 characters at most).", detail={"base_url": "too_long"})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("base_url must be an http:// or https:// URL with a host.", detail={"base_url": "invalid"})
    if parts.username or parts.password:
        raise ValidationFailed("base_url must not contain credentials; store the key as the key.", detail={"base_url": "credentials"})
    if settings.DAC_ALLOW_PRIVATE_BASE_URLS:
        return url.rstrip("/")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ValidationFailed(f"base_url host {parts.hostname!r} does not resolve.", detail={"base_url": "unresolvable"}) from None
    if any(_is_private(info[4][0]) for info in infos):
        raise ValidationFailed(
            "base_url points at a private, loopback or link-local address; an operator can allow that "
            "with DAC_ALLOW_PRIVATE_BASE_URLS (needed for a local Ollama).",
            detail={"base_url": "private_address"},
        )
    return url.rstrip("/")


# Checked URLs, for the calls that follow: DNS is asked again after this many seconds.
_SAFE_FOR_SECONDS = 60.0
_checked: dict[tuple[str, bool], tuple[float, str]] = {}


async def ensure_safe_base_url(url: str) -> str:
    """`validate_base_url` before a provider call, remembered briefly so the hot path does
    not resolve the host on every call (the resolver runs in a thread: it blocks)."""
    now = time.monotonic()
    key = (url, settings.DAC_ALLOW_PRIVATE_BASE_URLS)
    hit = _checked.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    clean = await asyncio.to_thread(validate_base_url, url)
    _checked[key] = (now + _SAFE_FOR_SECONDS, clean)
    return clean
