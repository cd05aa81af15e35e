"""Memory routes. The project includes them as:

    path("", include("threads.memory.urls"))                      # pages: /memory/…, namespace "memory"
    path("", include(memory.urls.memory_api_urlpatterns))         # in dac/api_urls.py: /api/v1/memory/…
"""

from django.urls import path, re_path

from threads.memory import apis, views

app_name = "memory"

memory_urlpatterns = [
    path("memory/", views.memory_search_page, name="search"),
    path("memory/messages/<int:message_id>/forget/", views.memory_forget, name="forget"),
    path("memory/settings/", views.memory_settings_save, name="settings"),
]

# Under the "api" namespace: api:memory-search, api:memory-message, api:memory-settings.
# The trailing slash is optional: DELETE cannot follow an APPEND_SLASH redirect.
memory_api_urlpatterns = [
    re_path(r"^memory/search/?$", apis.MemorySearchApi.as_view(), name="memory-search"),
    re_path(r"^memory/messages/(?P<message_id>[0-9]{1,18})/?$", apis.MemoryMessageApi.as_view(), name="memory-message"),
    re_path(r"^memory/settings/?$", apis.MemorySettingsApi.as_view(), name="memory-settings"),
]

urlpatterns = memory_urlpatterns
