"""DRF endpoints of the threads app, mounted under /api/v1/."""

from django.urls import path

from threads import apis

urlpatterns = [
    path("threads/", apis.ThreadListApi.as_view(), name="threads-list"),
    path("threads/<int:thread_id>/", apis.ThreadDetailApi.as_view(), name="threads-detail"),
    path("threads/<int:thread_id>/archive/", apis.ThreadArchiveApi.as_view(), name="threads-archive"),
    path("threads/<int:thread_id>/messages/", apis.MessageListApi.as_view(), name="messages-list"),
]
