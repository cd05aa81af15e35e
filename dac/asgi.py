"""ASGI entry point (`uvicorn dac.asgi:application`).

Two Django handlers share one URLconf. The OpenAI-compatible gateway (`/v1/…`) is the hot
path of integrations: it authenticates by bearer token and needs no session, cookies, CSRF,
messages or htmx, so it runs through a short stack of async-only middleware; Django's
standard middleware would each hop to a worker thread and back on every call. Everything else
(pages, the REST API, the admin) gets the full stack. Static files are served by Django's ASGI
static handler so a single `make run` process needs nothing in front of it. Once all is loaded,
the heap is frozen for the garbage collector (dac/gc_tuning.py).

`POST /v1/chat/completions` itself, the call integrations make all day, goes around Django's
handler machinery to the same view with the same middleware hooks (dac/gateway_fast_path.py).

The ASGI lifespan is DAC's own (Django has none): on start-up it listens for what other workers
tell this one to forget (dac/invalidation.py); on shutdown, once the server has stopped
taking requests and the open ones are done, the answers still being produced for clients that
went away get DAC_SHUTDOWN_GRACE_SECONDS to finish and be recorded (saved, audited, counted)
before the server cancels what is left.
"""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

from dac import invalidation  # noqa: E402
from dac.gateway_fast_path import GatewayFastPath  # noqa: E402
from dac.gc_tuning import prepare_for_serving  # noqa: E402
from threads.services.handle import answers_running_finish, serving_loop_register  # noqa: E402

GATEWAY_PREFIX = "/v1/"


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with the gateway's middleware and no thread hop of its own.

    Django's `handle` calls the request_started/finished receivers through `sync_to_async`:
    two hops to a worker thread per request (`Signal.asend` for the sync receivers, then
    `response.close`). Those receivers (close_old_connections, reset_queries, close_caches,
    reset_urlconf) only touch connections opened by the thread they run on, and the gateway's
    event-loop thread never opens one (database work goes through `db_step` on the pool), so
    here they run inline: a few microseconds instead of two GIL hand-offs. The rest is Django's
    `handle` as it is: body read, request built, view run while watching for a disconnect.
    """

    def load_middleware(self, is_async=False):
        with override_settings(MIDDLEWARE=settings.DAC_GATEWAY_MIDDLEWARE):
            super().load_middleware(is_async=is_async)

    async def __call__(self, scope, receive, send):
        # Django wraps each request in a ThreadSensitiveContext, which starts a thread for the
        # request's thread-sensitive sync calls; the gateway makes none (its views are async).
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the response was being sent
            return response

        disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
        processing = asyncio.create_task(process_request())
        await asyncio.wait((disconnect, processing), return_when=asyncio.FIRST_COMPLETED)
        for task in (disconnect, processing):
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = processing.result()
        except asyncio.CancelledError:
            signals.request_finished.send(sender=self.__class__)
        else:
            response.close()  # sends request_finished
        body_file.close()


gateway_application = GatewayASGIHandler()
gateway_fast_path = GatewayFastPath()
site_application = ASGIStaticFilesHandler(django_application) if settings.DAC_SERVE_STATIC else django_application


prepare_for_serving()


async def lifespan(receive, send) -> None:
    listening = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            serving_loop_register()
            listening = asyncio.create_task(invalidation.listen())  # the other workers' changes
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if listening is not None:
                listening.cancel()
            try:
                await answers_running_finish(timeout=settings.DAC_SHUTDOWN_GRACE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the server logs it and exits all the same
                await send({"type": "lifespan.shutdown.failed", "message": f"waiting for the running answers failed: {exc!r}"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX):
        if gateway_fast_path.handles(scope):
            return await gateway_fast_path(scope, receive, send)
        return await gateway_application(scope, receive, send)
    return await site_application(scope, receive, send)
