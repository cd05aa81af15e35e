from __future__ import annotations

from asgiref.sync import async_to_sync
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from providers import selectors
from providers.services.keys import CONFIGURABLE_PROVIDERS, provider_key_add, provider_key_delete, provider_key_get, provider_key_test
from tenants.models import User
from tenants.permissions import IsOrgAdmin, IsOrgMember


@extend_schema_serializer(component_name="ProviderKey")
class ProviderKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField()
    label = serializers.CharField()
    masked = serializers.CharField(help_text="First 8 and last 4 characters; the key itself is never returned.")
    base_url = serializers.CharField()
    default_model = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_tested_at = serializers.DateTimeField(allow_null=True)
    last_test_ok = serializers.BooleanField(allow_null=True)
    last_test_message = serializers.CharField()


class ProviderKeyListApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="ProviderKeyCreate")
    class InputSerializer(serializers.Serializer):
        provider = serializers.ChoiceField(choices=CONFIGURABLE_PROVIDERS)
        api_key = serializers.CharField(write_only=True, max_length=2000, trim_whitespace=True)
        label = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
        base_url = serializers.CharField(required=False, allow_blank=True, max_length=600, default="")
        default_model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                              help_text="Asked for when neither the request nor the routing rule names a model "
                                                        "(an OpenAI-compatible server's: e.g. llama3.2).")

    @extend_schema(responses=ProviderKeyOutputSerializer(many=True))
    def get(self, request):
        return Response(ProviderKeyOutputSerializer(selectors.provider_key_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ProviderKeyOutputSerializer})
    def post(self, request):
        if not IsOrgAdmin().has_permission(request, self):
            self.permission_denied(request, message=IsOrgAdmin.message)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = provider_key_add(
            org_id=request._request.org_access.org_id,
            actor=Actor.of_request(request._request),
            created_by=request.user if isinstance(request.user, User) else None,
            **data.validated_data,
        )
        return Response(ProviderKeyOutputSerializer(key).data, status=status.HTTP_201_CREATED)


class ProviderKeyDetailApi(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema(responses={204: None})
    def delete(self, request, key_id: int):
        provider_key_delete(key=provider_key_get(key_id=key_id), actor=Actor.of_request(request._request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProviderKeyTestApi(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema_serializer(component_name="ProviderKeyTestResult")
    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        category = serializers.CharField()
        message = serializers.CharField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request, key_id: int):
        key = provider_key_get(key_id=key_id)
        result = async_to_sync(provider_key_test)(key=key, actor=Actor.of_request(request._request))
        return Response(self.OutputSerializer(result).data)
