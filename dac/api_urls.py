"""The DRF API under /api/v1/: each app contributes its `api_urls`."""

from django.urls import include, path

urlpatterns = [
    path("", include("tenants.api_urls")),
]
