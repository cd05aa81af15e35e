"""DRF endpoints of the routing app, mounted under /api/v1/."""

from django.urls import path

from routing import apis

urlpatterns = [
    path("routing/simulate", apis.RoutingSimulateApi.as_view(), name="routing-simulate"),
    path("routing/settings", apis.RoutingSettingsApi.as_view(), name="routing-settings"),
]
