"""Audit API: the org's chain, filtered and paginated (owners and admins; tokens act as members)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import audit_chain_status_cached, audit_filters_parse, audit_list
from tenants.permissions import IsOrgAdmin

FILTER_PARAMETERS = [
    OpenApiParameter("event", OpenApiTypes.STR, description='An event type ("provider.call"), or a prefix ending in ".*" ("membership.*").'),
    OpenApiParameter("actor", OpenApiTypes.STR, description="Part of the actor's email or token name."),
    OpenApiParameter("since", OpenApiTypes.STR, description="A date (YYYY-MM-DD, from its start) or an ISO 8601 date-time."),
    OpenApiParameter("until", OpenApiTypes.STR, description="A date (inclusive) or an ISO 8601 date-time (exclusive)."),
]


class AuditLogListApi(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema_serializer(component_name="AuditEntry")
    class OutputSerializer(serializers.Serializer):
        seq = serializers.IntegerField()
        created_at = serializers.DateTimeField()
        event = serializers.CharField()
        actor_type = serializers.CharField()
        actor_id = serializers.CharField()
        actor_label = serializers.CharField()
        target = serializers.CharField()
        details = serializers.JSONField()
        request_hash = serializers.CharField()
        response_hash = serializers.CharField()
        prev_hash = serializers.CharField()
        hash = serializers.CharField()

    @extend_schema(parameters=FILTER_PARAMETERS, responses=OutputSerializer(many=True))
    def get(self, request):
        filters = audit_filters_parse(request.query_params)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(audit_list(filters=filters), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class AuditChainStatusApi(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema_serializer(component_name="AuditChainStatus")
    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        count = serializers.IntegerField()
        head_seq = serializers.IntegerField()
        head_hash = serializers.CharField()
        checked = serializers.IntegerField(help_text="Rows verified by this check (the newest ones).")
        full = serializers.BooleanField(help_text="Whether the whole chain was verified.")
        broken_seq = serializers.IntegerField(allow_null=True, source="broken.seq", default=None)
        broken_reason = serializers.CharField(allow_null=True, source="broken.reason", default=None)

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        status = audit_chain_status_cached(org_id=request._request.org_access.org_id)
        return Response(self.OutputSerializer(status).data)
