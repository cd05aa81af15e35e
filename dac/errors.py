"""One error family for the domain, and one JSON shape for every API error.

Services raise `ApplicationError` subclasses; HTML views show their message; the DRF exception
handler turns them (and DRF's own errors) into `{"error": {"code", "message", "detail"}}`.
"""

from __future__ import annotations

import sys

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, NotSupportedError, ProgrammingError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class ApplicationError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, detail: dict | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or {}
        if code:
            self.code = code
        self.headers = headers or {}


class ValidationFailed(ApplicationError):
    status = 400
    code = "validation_error"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class RateLimited(ApplicationError):
    status = 429
    code = "quota_exceeded"


class ProviderFailed(ApplicationError):
    """Every candidate provider failed; `code` is the last provider error category."""

    status = 502


def error_body(code: str, message: str, detail=None) -> dict:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def error_response(code: str, message: str, status: int, detail=None, headers=None) -> JsonResponse:
    response = JsonResponse(error_body(code, message, detail), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def openai_error_body(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """The error shape of OpenAI's API, which the gateway (/v1/) speaks."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_error_response(message: str, status: int, *, type_: str, code: str | None = None, param: str | None = None, headers=None) -> JsonResponse:
    response = JsonResponse(openai_error_body(message, type_=type_, code=code, param=param), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_message(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _flatten_message(value)
            parts.append(text if field in ("non_field_errors", "detail") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten_message(item) for item in detail)
    return str(detail)


def api_exception_handler(exc, context):
    """DRF's exception handler: every error leaves in the one shape."""
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.code, exc.message, exc.detail), status=exc.status)
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if database_unavailable(exc):
        response = Response(error_body("unavailable", "The database is unavailable; retry in a few seconds."), status=503)
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, PermissionDenied):
        return Response(error_body("forbidden", "You do not have permission to do this."), status=403)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(
            error_body("validation_error", _flatten_message(exc.detail), exc.detail), status=400
        )
    if isinstance(exc, drf_exceptions.APIException):
        code = {
            401: "not_authenticated",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            406: "not_acceptable",
            415: "unsupported_media_type",
            429: "throttled",
        }.get(exc.status_code, "error")
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            code = "not_authenticated"
        response = Response(error_body(code, _flatten_message(exc.detail)), status=exc.status_code)
        if exc.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


def database_unavailable(exc) -> bool:
    """Whether `exc` means the database could not be reached or used (a 503, retry later), not
    that DAC sent it something it refuses (bad data, a broken constraint, wrong SQL: a 500,
    which retrying does not mend)."""
    return isinstance(exc, (DatabaseError, InterfaceError)) and not isinstance(exc, (DataError, IntegrityError, ProgrammingError, NotSupportedError))


def not_found_view(request, exception=None):
    """404 for a path no route matches: the API's error shape under /api/, OpenAI's under /v1/,
    the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response("not_found", f"No API endpoint at {request.path}.", 404)
    if request.path.startswith("/v1/"):
        return openai_error_response(f"Unknown endpoint {request.path}.", 404, type_="invalid_request_error", code="not_found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error_view(request):
    """500 in the shape the caller reads; a database outage says 503 and when to retry."""
    exc = sys.exc_info()[1]
    unavailable = database_unavailable(exc)
    status = 503 if unavailable else 500
    message = "The database is unavailable; retry in a few seconds." if unavailable else "DAC failed on this request; the error was logged."
    headers = {"Retry-After": "5"} if unavailable else {}
    if request.path.startswith("/api/"):
        return error_response("unavailable" if unavailable else "internal", message, status, headers=headers)
    if request.path.startswith("/v1/"):
        return openai_error_response(message, status, type_="service_unavailable" if unavailable else "server_error", headers=headers)
    from django.views.defaults import server_error

    response = server_error(request)
    if unavailable:
        response.status_code = 503
        response["Retry-After"] = "5"
    return response
