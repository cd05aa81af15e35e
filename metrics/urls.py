"""HTML pages of the metrics app."""

from django.urls import path  # noqa: F401

app_name = "metrics"

urlpatterns: list = []
