"""Error classes: the seven provider categories, and DAC's own four.

A provider category names what went wrong at the provider (the adapter raised
`ProviderError(category)`); DAC's own classes are prefixed `dac_` so "DAC refused the request"
never reads as "the provider refused it" (both have a quota, both have auth):

- `dac_validation`: the caller's request was wrong (400, 404, 405, 409, 413, 415, 422 …);
- `dac_auth`: not signed in, bad token, not allowed (401, 403);
- `dac_quota`: DAC's own per-org limit said no (429);
- `dac_internal`: DAC failed (5xx that is not a provider failure).

A failed provider call reaches the client as a 5xx in the one error shape whose `code` is the
provider category (`ProviderFailed`), so the class comes from the body when it is one of the
seven, from the status otherwise.
"""

from __future__ import annotations

import json

from providers.adapters.base import ERROR_CATEGORIES as PROVIDER_CATEGORIES

DAC_CLASSES: tuple[str, ...] = ("dac_validation", "dac_auth", "dac_quota", "dac_internal")
ERROR_CLASSES: tuple[str, ...] = PROVIDER_CATEGORIES + DAC_CLASSES
OUTCOMES: tuple[str, ...] = ("ok",) + PROVIDER_CATEGORIES

ERROR_CLASS_LABELS = {
    "auth": "Provider rejected the key",
    "bad_request": "Provider refused the request",
    "rate_limited": "Provider rate limit",
    "quota_exceeded": "Provider quota or credit",
    "content_filtered": "Provider content filter",
    "timeout": "Provider timeout",
    "unavailable": "Provider unavailable",
    "dac_validation": "DAC: invalid request",
    "dac_auth": "DAC: not authenticated / forbidden",
    "dac_quota": "DAC: org limit reached",
    "dac_internal": "DAC: internal error",
}

_MAX_BODY_SNIFF = 4096


def error_code_of(response) -> str | None:
    """The `error.code` of a JSON error body, or None (never raises, never reads a stream)."""
    if getattr(response, "streaming", False):
        return None
    if "json" not in response.get("Content-Type", ""):
        return None
    content = getattr(response, "content", b"")
    if not content or len(content) > _MAX_BODY_SNIFF:
        return None
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def error_class_for(status: int, code: str | None = None) -> str:
    """'' for a success; otherwise one of ERROR_CLASSES."""
    if status < 400:
        return ""
    if status >= 500:
        if code in PROVIDER_CATEGORIES:
            return code
        return "dac_internal"
    if status in (401, 403):
        return "dac_auth"
    if status == 429:
        return "dac_quota"
    return "dac_validation"


def error_class_of_response(response) -> str:
    status = response.status_code
    return error_class_for(status, error_code_of(response) if status >= 500 else None)
