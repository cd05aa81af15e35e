"""The DRF API under /api/v1/: each app contributes its `api_urls`."""

from django.urls import include, path

from threads.memory.urls import memory_api_urlpatterns

urlpatterns = [
    path("", include("tenants.api_urls")),
    path("", include("threads.api_urls")),
    path("", include(memory_api_urlpatterns)),
    path("", include("providers.api_urls")),
    path("", include("routing.api_urls")),
    path("", include("audit.api_urls")),
    path("", include("metrics.api_urls")),
]
