from django.urls import path

from threads import views

app_name = "threads"

urlpatterns = [
    path("threads/", views.thread_list, name="list"),
    path("threads/new/", views.thread_new, name="new"),
    path("threads/<int:thread_id>/", views.thread_detail, name="detail"),
    path("threads/<int:thread_id>/rename/", views.thread_rename, name="rename"),
    path("threads/<int:thread_id>/archive/", views.thread_archive, name="archive"),
    path("threads/<int:thread_id>/messages/", views.message_send_view, name="send"),
    path("threads/<int:thread_id>/messages/<int:message_id>/", views.message_detail, name="message"),
    path("threads/<int:thread_id>/messages/<int:message_id>/stop/", views.message_stop_view, name="stop"),
]
