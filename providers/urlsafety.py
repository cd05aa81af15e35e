"""SSRF guard for user-supplied provider base URLs.

A base_url must be http(s) and every address its host resolves to must be public, unless the
operator set DAC_ALLOW_PRIVATE_BASE_URLS (a local Ollama or vLLM needs it). Checked when a key
is saved and again before each call (remembered for a minute); the addresses the provider client
then connects to are checked too (`address_allowed`, for adapters made with `check_addresses`),
and the embeddings client connects to the addresses it checked (`connect_addresses`), so a DNS
answer that changes between the check and the connection (rebinding to 127.0.0.1 or a cloud
metadata address) is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings

from dac.errors import ValidationFailed


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # IPv4 reached through a NAT64 gateway


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that one: judge it.
        if ip.ipv4_mapped or ip.sixtofour:
            ip = ip.ipv4_mapped or ip.sixtofour
        elif ip.teredo:
            ip = ip.teredo[1]
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return not ip.is_global or ip.is_multicast


def address_allowed(address: str) -> bool:
    """Whether a call with a tenant's base URL may connect to `address` (an IP): a public one,
    or any when the operator allows private base URLs. Asked by the provider client of the
    addresses it connects to (adapters made with `check_addresses`), since a host's DNS answer
    may change between the check of its URL and the connection (rebinding)."""
    return settings.DAC_ALLOW_PRIVATE_BASE_URLS or not _is_private(address)


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
    if not settings.DAC_ALLOW_PRIVATE_BASE_URLS:
        _public_addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return url.rstrip("/")


def _public_addresses(host: str, port: int) -> list[str]:
    """What `host` resolves to now, every address public; else ValidationFailed."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ValidationFailed(f"base_url host {host!r} does not resolve.", detail={"base_url": "unresolvable"}) from None
    if any(_is_private(info[4][0]) for info in infos):
        raise ValidationFailed(
            "base_url points at a private, loopback or link-local address; an operator can allow that "
            "with DAC_ALLOW_PRIVATE_BASE_URLS (needed for a local Ollama).",
            detail={"base_url": "private_address"},
        )
    return list(dict.fromkeys(info[4][0] for info in infos))


def connect_addresses(host: str, port: int) -> list[str]:
    """Where a synchronous client (the embeddings' httpx) may connect for a tenant's `host`: what
    it resolves to now, every address checked (ValidationFailed otherwise), so the connection
    reaches what was checked and no second lookup can be rebound. `[host]` when the operator
    allows private base URLs."""
    return [host] if settings.DAC_ALLOW_PRIVATE_BASE_URLS else _public_addresses(host, port)


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
