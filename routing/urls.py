from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("settings/routing/", views.routing_settings, name="settings"),
    path("settings/routing/save/", views.routing_settings_save, name="save"),
]
