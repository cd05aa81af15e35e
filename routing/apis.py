from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from routing import rules
from routing.services import org_routing, routing_settings_update
from tenants.permissions import IsOrgAdmin, IsOrgMember


@extend_schema_serializer(component_name="RoutingDecision")
class DecisionSerializer(serializers.Serializer):
    rule = serializers.ChoiceField(choices=rules.RULE_NAMES)
    provider = serializers.CharField()
    model = serializers.CharField()
    reason = serializers.CharField()
    intent = serializers.CharField()
    matched = serializers.ListField(child=serializers.CharField())
    order = serializers.ListField(child=serializers.CharField())


class RoutingSimulateApi(APIView):
    """Which rule and provider a message would get: no provider is called."""

    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="RoutingSimulate")
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=32_000)
        message_count = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)

    @extend_schema(request=InputSerializer, responses=DecisionSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        routing = org_routing()
        decision = rules.evaluate(
            data.validated_data["text"], data.validated_data["message_count"],
            rule_order=routing.rule_order, disabled=routing.disabled, models=routing.models,
        )
        return Response(DecisionSerializer(decision.to_dict()).data)


@extend_schema_serializer(component_name="RoutingSettings")
class RoutingSettingsSerializer(serializers.Serializer):
    rule_order = serializers.ListField(child=serializers.ChoiceField(choices=rules.RULE_NAMES), required=False)
    disabled_rules = serializers.ListField(child=serializers.ChoiceField(choices=rules.RULE_NAMES), required=False)
    models = serializers.DictField(child=serializers.CharField(max_length=200), required=False)


class RoutingSettingsApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema(responses=RoutingSettingsSerializer)
    def get(self, request):
        routing = org_routing()
        return Response({
            "rule_order": list(routing.rule_order or rules.RULE_NAMES),
            "disabled_rules": sorted(routing.disabled),
            "models": {rule: routing.models.get(rule) or rules.DEFAULT_MODELS[rule] for rule in rules.RULE_NAMES},
        })

    @extend_schema(request=RoutingSettingsSerializer, responses=RoutingSettingsSerializer)
    def patch(self, request):
        if not IsOrgAdmin().has_permission(request, self):
            self.permission_denied(request, message=IsOrgAdmin.message)
        data = RoutingSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        routing_settings_update(org_id=request._request.org_access.org_id, actor=Actor.of_request(request._request), **data.validated_data)
        return self.get(request)
