"""DRF endpoints of the providers app, mounted under /api/v1/."""

from django.urls import path

from providers import apis

urlpatterns = [
    path("provider-keys/", apis.ProviderKeyListApi.as_view(), name="provider-keys-list"),
    path("provider-keys/<int:key_id>/", apis.ProviderKeyDetailApi.as_view(), name="provider-keys-detail"),
    path("provider-keys/<int:key_id>/test/", apis.ProviderKeyTestApi.as_view(), name="provider-keys-test"),
]
