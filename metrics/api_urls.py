"""DRF endpoints of the metrics app, mounted under /api/v1/."""

from django.urls import path

from metrics import apis

urlpatterns = [
    path("usage/summary/", apis.UsageSummaryApi.as_view(), name="usage-summary"),
    path("usage/paths/", apis.UsagePathListApi.as_view(), name="usage-paths"),
    path("usage/providers/", apis.UsageProviderListApi.as_view(), name="usage-providers"),
    path("usage/errors/", apis.UsageErrorsApi.as_view(), name="usage-errors"),
    path("usage/timeseries/", apis.UsageTimeseriesApi.as_view(), name="usage-timeseries"),
]
