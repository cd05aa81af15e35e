"""Time every request and record it: route template, method, status, latency, org, error class.

Outermost middleware, so the latency covers the whole stack. The org is read from the request
after the response (the tenant middleware or DRF token auth put `org_access` on it). For a
streamed response the latency is the time to the response headers; the provider-call metrics
cover the stream itself. Recording never breaks a response: any failure is logged.
"""

from __future__ import annotations

import logging
import time

from django.urls import Resolver404, resolve

from dac.middleware import BothModesMiddleware
from metrics.classify import error_class_of_response
from metrics.services import request_record

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def route_of(request) -> str:
    """The URL pattern that served the request ("/threads/<int:thread_id>/"), never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # A middleware answered before URL resolution (e.g. a bad X-Org-Id): resolve now.
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
        except Exception:  # noqa: BLE001
            return UNMATCHED
    route = match.route
    if not route:
        return UNMATCHED
    return ("/" + route.lstrip("^").rstrip("$"))[:200]


def record(request, response, started: float, ended: float | None = None) -> None:
    """Record one request; its latency runs from `started` to `ended` (default: now)."""
    try:
        latency_ms = ((time.perf_counter() if ended is None else ended) - started) * 1000
        method = request.method if request.method in METHODS else "OTHER"
        access = getattr(request, "org_access", None)
        request_record(
            org_id=getattr(access, "org_id", None),
            method=method,
            route=route_of(request),
            status=response.status_code,
            latency_ms=latency_ms,
            error_class=error_class_of_response(response),
        )
    except Exception:  # noqa: BLE001 - metrics never break a response
        logger.exception("metrics: could not record %s %s", request.method, request.path)


class RequestMetricsMiddleware(BothModesMiddleware):
    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        record(request, response, started)
        return response

    async def __acall__(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        record(request, response, started)
        return response
