"""ASGI entry point (uvicorn dac.asgi:application). Static files are served by Django's
ASGI static handler so a single `make run` process needs nothing in front of it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dac.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

application = ASGIStaticFilesHandler(django_application) if settings.DAC_SERVE_STATIC else django_application
