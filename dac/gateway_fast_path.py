"""`POST /v1/chat/completions`, the hot path of integrations, served without Django's handler
machinery around the same view.

Django's ASGI handler costs about a quarter of a millisecond of CPU per call here: the body
spooled through a temporary file, a task listening for the disconnect beside a task running the
view, the middleware chain (each layer wrapped in exception conversion), URL resolution, the
response sent header by header. The fast path keeps what those do for this one route and drops
the rest:

- the request is Django's own `ASGIRequest` (over the body read into memory, bounded), with the
  route resolved once at start-up, so the view and the middleware hooks see what they always see;
- the gateway middleware's hooks run in the stack's order, the very same instances' logic:
  HTTPS redirect (AsyncSecurityMiddleware.process_request), then on the response CORS (Vary and
  the Access-Control headers), DAC's security headers, Django's (nosniff, HSTS, referrer), and
  the request metrics. `DAC_GATEWAY_MIDDLEWARE` must be exactly that stack: anything added to it
  makes this path refuse to load instead of silently skipping it;
- request_started / request_finished are sent, 4xx/5xx are logged as Django logs them, and an
  exception becomes Django's response for it (`response_for_exception`: the gateway's OpenAI 500).

A client that goes away cancels the view while it prepares the answer, or the sending of a
streamed one, as under Django's handler: the view sees CancelledError, and an answer nothing
keeps then stops (`SendHandle.abandon`). The listener is one task; the view runs in the
request's own task, which the listener cancels while (and only while) the view works.
CORS preflights (OPTIONS) and every other `/v1/` route keep Django's gateway handler.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from contextlib import aclosing

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest, get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.http import HttpResponse
from django.urls import resolve, set_script_prefix
from django.utils.log import log_response

from corsheaders.middleware import CorsMiddleware
from dac.middleware import AsyncSecurityMiddleware, SecurityHeadersMiddleware
from metrics.middleware import record
from threads.gateway import MAX_BODY_BYTES

logger = logging.getLogger("django.request")

PATH = "/v1/chat/completions"
# The gateway stack this path reproduces, outermost first (see the module docstring).
MIDDLEWARE = [
    "metrics.middleware.RequestMetricsMiddleware",
    "dac.middleware.AsyncSecurityMiddleware",
    "dac.middleware.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
]


async def _unused(request):  # the middleware instances' get_response: only their hooks are used
    raise AssertionError("the fast path calls the view itself")


class GatewayFastPath:
    def __init__(self) -> None:
        if list(settings.DAC_GATEWAY_MIDDLEWARE) != MIDDLEWARE:
            raise ImproperlyConfigured(
                f"dac/gateway_fast_path.py reproduces DAC_GATEWAY_MIDDLEWARE = {MIDDLEWARE}; "
                "it was changed: teach the fast path the new middleware first."
            )
        self.security = AsyncSecurityMiddleware(_unused)
        self.security_headers = SecurityHeadersMiddleware(_unused)
        self.cors = CorsMiddleware(_unused)
        self.match = resolve(PATH)
        # Room for the view's own "too large" answer, and for Django's check of Content-Length.
        self.body_limit = max(MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) + 1

    def handles(self, scope) -> bool:
        return scope["path"] == PATH and scope["method"] == "POST"

    async def __call__(self, scope, receive, send) -> None:
        body = await self._read_body(receive)
        if body is None:
            return  # the client left before sending its request
        started = time.perf_counter()
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        try:
            request = ASGIRequest(scope, io.BytesIO(body))
        except UnicodeDecodeError:
            logger.warning("Bad Request (UnicodeDecodeError)", exc_info=True, extra={"status_code": 400})
            request = None
        # As under Django's handler, the client leaving cancels the work for it: the view while it
        # prepares the answer, then the sending of a streamed one.
        leaving = asyncio.ensure_future(_client_left(receive))
        try:
            if request is None:
                response = HttpResponse("Bad Request", status=400)
            else:
                request.resolver_match = self.match
                response = await self._response_unless_left(request, leaving)
                if response is None:
                    signals.request_finished.send(sender=self.__class__)
                    return
                if response.streaming:
                    record(request, response, started)  # a stream's latency: to its head
            ready = time.perf_counter()
            try:
                await _send_response(response, send, leaving)
            except OSError:
                pass  # the client went away meanwhile
            finally:
                if request is not None and not response.streaming:
                    # Measured as Django's middleware does (to the response, not its sending),
                    # recorded once it is sent: not in its way.
                    record(request, response, started, ended=ready)
                response.close()  # sends request_finished
        finally:
            leaving.cancel()

    async def _response_unless_left(self, request, leaving: asyncio.Future) -> HttpResponse | None:
        """The view's response, or None when the client left first: the client leaving cancels
        this task while (and only while) the view works; the cancellation is then taken back."""
        this = asyncio.current_task()
        working = True

        def cancel_the_view(_) -> None:
            if working:
                this.cancel()

        leaving.add_done_callback(cancel_the_view)
        try:
            return await self._response(request)
        except asyncio.CancelledError:
            if not leaving.done() or this.uncancel() > 0:
                raise  # cancelled for another reason
            leaving.result()  # raises if listening failed; else the client left
            return None
        finally:
            working = False

    async def _response(self, request) -> HttpResponse:
        try:
            response = self.security.process_request(request)  # the HTTPS redirect, if any
            if response is None:
                response = await self.match.func(request, *self.match.args, **self.match.kwargs)
            response = self.cors.add_response_headers(request, response)
            response = self.security_headers._decorate(response)
            response = self.security.process_response(request, response)
        except Exception as exc:  # noqa: BLE001 - what Django's handler would answer
            response = await sync_to_async(response_for_exception, thread_sensitive=False)(request, exc)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response

    async def _read_body(self, receive) -> bytes | None:
        """The request body, or None when the client disconnected. Past `body_limit` the rest is
        read and dropped: the view (or Django's Content-Length check) refuses it as too large."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if size < self.body_limit:
                chunks.append(chunk[: self.body_limit - size])
                size += len(chunks[-1])
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _send_response(response: HttpResponse, send, leaving: asyncio.Future) -> None:
    """Send the response; a streamed one is cancelled when `leaving` (the client going away)
    ends first."""
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    if not response.streaming:
        content = response.content
        if not response.has_header("Content-Length"):
            headers.append((b"Content-Length", str(len(content)).encode("ascii")))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        return
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    sending = asyncio.ensure_future(_send_parts(response, send))
    try:
        await asyncio.wait((sending, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sending.cancel()  # when the client left first (or this request is being cancelled)
        await asyncio.wait((sending,))  # the view's iterator has unwound before the response closes
    for task in (sending, leaving):  # a failure of either is this request's, not a disconnect
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()


async def _send_parts(response: HttpResponse, send) -> None:
    async with aclosing(aiter(response)) as parts:
        async for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body"})


async def _client_left(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
