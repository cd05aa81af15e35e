"""HTML pages of the metrics app, and the Prometheus endpoint."""

from django.urls import path

from metrics import views

app_name = "metrics"

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("metrics", views.prometheus_metrics, name="prometheus"),
]
