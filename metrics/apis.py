"""Usage API: the numbers of the usage page, for the caller's org (members and API tokens)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics import selectors
from metrics.classify import ERROR_CLASSES, OUTCOMES
from tenants.permissions import IsOrgMember


class UsageFilterSerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(selectors.WINDOWS), default=selectors.DEFAULT_WINDOW)
    route = serializers.CharField(required=False, max_length=200, help_text="A path template, e.g. /api/v1/members/.")
    method = serializers.ChoiceField(choices=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"], required=False)
    error_class = serializers.ChoiceField(choices=list(ERROR_CLASSES), required=False)
    provider = serializers.CharField(required=False, max_length=32)
    model = serializers.CharField(required=False, max_length=100)
    outcome = serializers.ChoiceField(choices=list(OUTCOMES), required=False)


class StatsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    mean_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)


class CallStatsSerializer(StatsSerializer):
    first_token_mean_ms = serializers.FloatField(allow_null=True)
    streamed = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


def _query(request) -> selectors.UsageQuery:
    data = UsageFilterSerializer(data=request.query_params)
    data.is_valid(raise_exception=True)
    filters = dict(data.validated_data)
    window = filters.pop("window")
    return selectors.usage_query(window=window, filters=filters)


class UsageSummaryApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="UsageSummary")
    class OutputSerializer(serializers.Serializer):
        window = serializers.CharField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        requests = StatsSerializer()
        provider_calls = CallStatsSerializer()

    @extend_schema(parameters=[UsageFilterSerializer], responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(selectors.usage_summary(_query(request))).data)


class UsagePathListApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="UsagePath")
    class OutputSerializer(StatsSerializer):
        route = serializers.CharField()
        method = serializers.CharField()

    @extend_schema(parameters=[UsageFilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        query = _query(request)
        return Response({"window": query.window, "results": self.OutputSerializer(selectors.usage_by_path(query), many=True).data})


class UsageProviderListApi(APIView):
    permission_classes = [IsOrgMember]

    class ModelSerializer(serializers.Serializer):
        model = serializers.CharField()
        count = serializers.IntegerField()
        input_tokens = serializers.IntegerField()
        output_tokens = serializers.IntegerField()
        cost_usd = serializers.FloatField()

    @extend_schema_serializer(component_name="UsageProvider")
    class OutputSerializer(CallStatsSerializer):
        provider = serializers.CharField()
        models = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[UsageFilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        query = _query(request)
        return Response({"window": query.window, "results": self.OutputSerializer(selectors.usage_by_provider(query), many=True).data})


class UsageErrorsApi(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema_serializer(component_name="UsageErrors")
    class OutputSerializer(serializers.Serializer):
        requests = serializers.DictField(child=serializers.IntegerField(), help_text="Failed requests by error class.")
        provider_calls = serializers.DictField(child=serializers.IntegerField(), help_text="Failed provider calls by category.")

    @extend_schema(parameters=[UsageFilterSerializer], responses=OutputSerializer)
    def get(self, request):
        query = _query(request)
        return Response({"window": query.window, **self.OutputSerializer(selectors.usage_errors(query)).data})


class UsageTimeseriesApi(APIView):
    permission_classes = [IsOrgMember]

    class PointSerializer(serializers.Serializer):
        t = serializers.DateTimeField()
        requests = StatsSerializer()
        provider_calls = CallStatsSerializer()
        providers = serializers.DictField(child=serializers.DictField())

    @extend_schema_serializer(component_name="UsageTimeseries")
    class OutputSerializer(serializers.Serializer):
        window = serializers.CharField()
        step_seconds = serializers.IntegerField()
        providers = serializers.ListField(child=serializers.CharField())
        points = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[UsageFilterSerializer], responses=OutputSerializer)
    def get(self, request):
        series = selectors.usage_timeseries(_query(request))
        series["points"] = self.PointSerializer(series["points"], many=True).data
        return Response(series)
