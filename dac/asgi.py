"""ASGI entry point (`uvicorn dac.asgi:application`).

Two Django handlers share one URLconf. The OpenAI-compatible gateway (`/v1/…`) is the hot
path of integrations: it authenticates by bearer token and needs no session, cookies, CSRF,
messages or htmx, so it runs through a short stack of async-only middleware; Django's
standard middleware would each hop to a worker thread and back on every call. Everything else
(pages, the REST API, the admin) gets the full stack. Static files are served by Django's ASGI
static handler so a single `make run` process needs nothing in front of it.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

GATEWAY_PREFIX = "/v1/"


class GatewayASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        with override_settings(MIDDLEWARE=settings.DAC_GATEWAY_MIDDLEWARE):
            super().load_middleware(is_async=is_async)

    async def __call__(self, scope, receive, send):
        # Django wraps each request in a ThreadSensitiveContext, which starts a thread for the
        # request's thread-sensitive sync calls. The gateway's views are async and do their
        # database work through db_step (the shared pool); the only thread-sensitive calls left
        # are Django's own request_started/finished receivers (close_old_connections,
        # reset_queries), a few microseconds each: they share one thread instead of starting
        # one per request (two hops and a thread start less per call).
        await self.handle(scope, receive, send)


gateway_application = GatewayASGIHandler()
site_application = ASGIStaticFilesHandler(django_application) if settings.DAC_SERVE_STATIC else django_application


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIX):
        return await gateway_application(scope, receive, send)
    return await site_application(scope, receive, send)
