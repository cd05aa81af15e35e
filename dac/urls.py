from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from dac.health import healthz
from threads import gateway

# Each app names its own full paths (threads/, settings/providers/, audit/, usage/, metrics …).
urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("v1/chat/completions", gateway.chat_completions, name="gateway-chat"),
    path("v1/models", gateway.models, name="gateway-models"),
    path("v1/models/<path:model_id>", gateway.model, name="gateway-model"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include(("dac.api_urls", "api"), namespace="api")),
    path("", include("threads.urls")),
    path("", include("threads.memory.urls")),
    path("", include("providers.urls")),
    path("", include("routing.urls")),
    path("", include("audit.urls")),
    path("", include("metrics.urls")),
    path("", include("tenants.urls")),
]

handler404 = "dac.errors.not_found_view"
handler500 = "dac.errors.server_error_view"
