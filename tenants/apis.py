from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from tenants import selectors, services
from tenants.models import Membership, Role, User
from tenants.permissions import IsOrgAdmin, IsOrgMember


def _actor(request) -> Actor:
    return Actor.of_request(request._request if hasattr(request, "_request") else request)


class OrgListApi(APIView):
    @extend_schema_serializer(component_name="Org")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="org_id")
        slug = serializers.CharField()
        name = serializers.CharField()
        role = serializers.CharField()
        current = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        raw = request._request
        current = raw.org_access.org_id if raw.org_access else None
        if getattr(raw, "api_token", None) is not None:
            from tenants.models import Organization

            org = Organization.objects.get(pk=raw.api_token.org_id)
            orgs = [selectors.OrgAccess(org.id, org.slug, org.name, "member")]
        else:
            orgs = raw.orgs
        data = [{**vars_of(org), "current": org.org_id == current} for org in orgs]
        return Response(self.OutputSerializer(data, many=True).data)


def vars_of(org: selectors.OrgAccess) -> dict:
    return {"org_id": org.org_id, "slug": org.slug, "name": org.name, "role": org.role}


class MembershipOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()
    accepted_at = serializers.DateTimeField(allow_null=True, help_text="null: invited (the user had an account already), not yet accepted.")


class MembershipListApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="MembershipCreate")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
        password = serializers.CharField(required=False, write_only=True, max_length=128)

    @extend_schema(responses=MembershipOutputSerializer(many=True))
    def get(self, request):
        return Response(MembershipOutputSerializer(selectors.membership_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: MembershipOutputSerializer})
    def post(self, request):
        if not IsOrgAdmin().has_permission(request, self):
            self.permission_denied(request, message=IsOrgAdmin.message)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add_by_email(
            org_id=request._request.org_access.org_id, email=data.validated_data["email"], role=data.validated_data["role"],
            password=data.validated_data.get("password"), actor=_actor(request),
        )
        return Response(MembershipOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class MembershipDetailApi(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema_serializer(component_name="MembershipUpdate")
    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    def _get(self, membership_id: int) -> Membership:
        try:
            return selectors.membership_get(membership_id=membership_id)
        except Membership.DoesNotExist:
            raise Http404 from None

    @extend_schema(request=InputSerializer, responses=MembershipOutputSerializer)
    def patch(self, request, membership_id: int):
        membership = self._get(membership_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_role_change(
            membership=membership, role=data.validated_data["role"], actor=_actor(request), actor_role=request._request.org_access.role
        )
        return Response(MembershipOutputSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, membership_id: int):
        membership = self._get(membership_id)
        services.membership_remove(membership=membership, actor=_actor(request), actor_role=request._request.org_access.role)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiTokenListApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="ApiTokenCreate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema_serializer(component_name="ApiTokenCreated")
    class CreatedSerializer(ApiTokenOutputSerializer):
        token = serializers.CharField(help_text="The secret. Shown once, never again.")

    @extend_schema(responses=ApiTokenOutputSerializer(many=True))
    def get(self, request):
        return Response(ApiTokenOutputSerializer(selectors.api_token_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer})
    def post(self, request):
        if not IsOrgAdmin().has_permission(request, self):
            self.permission_denied(request, message=IsOrgAdmin.message)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if isinstance(request.user, User) else None
        created = services.api_token_create(
            org_id=request._request.org_access.org_id,
            name=data.validated_data["name"],
            created_by=user,
            actor=_actor(request),
            expires_at=data.validated_data.get("expires_at"),
        )
        body = {**ApiTokenOutputSerializer(created.token).data, "token": created.plaintext}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ApiTokenRevokeApi(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema(request=None, responses=ApiTokenOutputSerializer)
    def post(self, request, token_id: int):
        token = selectors.api_token_list().filter(pk=token_id).first()
        if token is None:
            raise Http404
        services.api_token_revoke(token=token, actor=_actor(request))
        return Response(ApiTokenOutputSerializer(token).data)
