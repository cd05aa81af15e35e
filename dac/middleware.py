"""Security headers on every response: a Content-Security-Policy that allows no inline or
third-party script (model output can never run code even if it slipped through escaping),
no framing, and a narrow Permissions-Policy."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.middleware.security import SecurityMiddleware


def _policy() -> str:
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        # htmx adds its indicator styles and templates set widths of bars: styles, not code.
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    if settings.DAC_HTTPS:
        directives["upgrade-insecure-requests"] = ""
    return "; ".join(f"{name} {value}".strip() for name, value in directives.items())


class BothModesMiddleware:
    """Base of middleware that runs natively in a sync stack and in an async one (no thread hop
    either way): subclasses answer in `__call__` when `is_async` is false, in `__acall__` when it
    is true (the instance is then marked as a coroutine function, as Django requires)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)


class SecurityHeadersMiddleware(BothModesMiddleware):
    def __init__(self, get_response):
        super().__init__(get_response)
        self.policy = _policy()

    def _decorate(self, response):
        response.headers.setdefault("Content-Security-Policy", self.policy)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self._decorate(self.get_response(request))

    async def __acall__(self, request):
        return self._decorate(await self.get_response(request))


class AsyncSecurityMiddleware(SecurityMiddleware):
    """Django's SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy) without the
    thread hop MiddlewareMixin makes under ASGI: its two hooks do no I/O, so they run on the loop."""

    async def __acall__(self, request):
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        return self.process_response(request, response)
