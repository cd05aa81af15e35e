"""DRF endpoints of the audit app, mounted under /api/v1/."""

from django.urls import path

from audit import apis

urlpatterns = [
    path("audit/", apis.AuditLogListApi.as_view(), name="audit-list"),
    path("audit/chain/", apis.AuditChainStatusApi.as_view(), name="audit-chain"),
]
