"""The memory API under /api/v1/memory/: search, forget a message, the org's settings."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from dac.errors import NotFound, ValidationFailed
from tenants.models import User
from tenants.permissions import IsOrgAdmin, IsOrgMember
from threads.memory.selectors import MAX_SEARCH_LIMIT, memory_search, memory_status
from threads.memory.services import forget_message, memory_settings_update
from threads.models import MemorySettings


class MemorySearchApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="MemoryHit")
    class ResultSerializer(serializers.Serializer):
        message_id = serializers.IntegerField()
        thread_id = serializers.IntegerField()
        thread_title = serializers.CharField()
        role = serializers.CharField()
        snippet = serializers.CharField()
        score = serializers.FloatField()
        created_at = serializers.DateTimeField()

    @extend_schema_serializer(component_name="MemorySearch")
    class OutputSerializer(serializers.Serializer):
        query = serializers.CharField()
        enabled = serializers.BooleanField(help_text="False when memory is off for the org (no results).")
        mode = serializers.ChoiceField(choices=["lexical", "hybrid"])
        results = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True, description="What to look for"), OpenApiParameter("limit", int, description=f"1–{MAX_SEARCH_LIMIT}, default 20")],
        responses=OutputSerializer,
    )
    def get(self, request):
        raw_limit = request.query_params.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_SEARCH_LIMIT}.", detail={"limit": "invalid"}) from None
        search = memory_search(org_id=request._request.org_access.org_id, query=request.query_params.get("q", ""), limit=limit)
        return Response({
            "query": search.query,
            "enabled": search.enabled,
            "mode": search.mode,
            "results": self.ResultSerializer(search.results, many=True).data,
        })


class MemoryMessageApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema(request=None, responses={204: None}, parameters=[OpenApiParameter("message_id", int, OpenApiParameter.PATH)])
    def delete(self, request, message_id: str):
        """Remove a message from the org's memory (the thread keeps it); 404 for another org's."""
        user = request.user if isinstance(request.user, User) else None
        try:
            forget_message(org_id=request._request.org_access.org_id, message_id=message_id, actor=Actor.of_request(request._request), user=user)
        except NotFound:
            raise Http404 from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemorySettingsApi(APIView):
    """Read (members) or change (admins) the org's memory settings."""

    def get_permissions(self):
        return [IsOrgAdmin()] if self.request.method == "PATCH" else [IsOrgMember()]

    @extend_schema_serializer(component_name="MemorySettingsUpdate")
    class InputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField(required=False)
        top_k = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=20)
        min_score = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1000)
        embeddings = serializers.ChoiceField(required=False, choices=MemorySettings.Embeddings.values, allow_blank=True)
        embedding_model = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema_serializer(component_name="MemorySettings")
    class OutputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        top_k = serializers.IntegerField(help_text="Effective value (the org's, else DAC_MEMORY_TOP_K).")
        min_score = serializers.FloatField(help_text="Effective value (the org's, else DAC_MEMORY_MIN_SCORE).")
        embeddings = serializers.CharField()
        embedding_model = serializers.CharField()
        backlog_pending = serializers.IntegerField()
        backlog_failing = serializers.IntegerField()

    def _body(self, org_id: int) -> dict:
        state = memory_status(org_id=org_id)
        s = state.settings
        return {
            "enabled": s.enabled, "top_k": s.top_k, "min_score": s.min_score, "embeddings": s.embeddings,
            "embedding_model": s.embedding_model, "backlog_pending": state.pending, "backlog_failing": state.failing,
        }

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(self._body(request._request.org_access.org_id))

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org_id = request._request.org_access.org_id
        memory_settings_update(org_id=org_id, actor=Actor.of_request(request._request), **data.validated_data)
        return Response(self._body(org_id))
