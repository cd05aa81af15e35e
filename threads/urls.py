"""HTML pages of the threads app."""

from django.urls import path  # noqa: F401

app_name = "threads"

urlpatterns: list = []
