from django.urls import path

from providers import views

app_name = "providers"

urlpatterns = [
    path("settings/providers/", views.provider_settings, name="settings"),
    path("settings/providers/permissions/", views.agent_permission_view, name="permission"),
    path("settings/providers/keys/<int:key_id>/test/", views.provider_key_test_view, name="key_test"),
    path("settings/providers/keys/<int:key_id>/activate/", views.provider_key_activate_view, name="key_activate"),
    path("settings/providers/keys/<int:key_id>/delete/", views.provider_key_delete_view, name="key_delete"),
    path("settings/providers/<str:provider>/keys/", views.provider_key_add_view, name="key_add"),
]
