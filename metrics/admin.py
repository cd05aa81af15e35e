"""Operators see every org's rollups (the operator admin runs in operator_context)."""

from django.contrib import admin

from metrics.models import ProviderRollup, RequestRollup


class ReadOnlyRollupAdmin(admin.ModelAdmin):
    date_hierarchy = "bucket"
    list_select_related = ("org",)
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="p50 ms")
    def p50(self, obj):
        return _ms(obj.percentile(0.5))

    @admin.display(description="p95 ms")
    def p95(self, obj):
        return _ms(obj.percentile(0.95))

    @admin.display(description="p99 ms")
    def p99(self, obj):
        return _ms(obj.percentile(0.99))

    @admin.display(description="mean ms")
    def mean(self, obj):
        return _ms(obj.latency_sum_ms / obj.count if obj.count else None)


def _ms(value):
    return "–" if value is None else f"{value:.1f}"


@admin.register(RequestRollup)
class RequestRollupAdmin(ReadOnlyRollupAdmin):
    list_display = ("bucket", "resolution", "org", "method", "route", "error_class", "count", "mean", "p50", "p95", "p99")
    list_filter = ("resolution", "error_class", "method", "org")
    search_fields = ("route", "org__slug")
    exclude = ("hist", "hist_offset")


@admin.register(ProviderRollup)
class ProviderRollupAdmin(ReadOnlyRollupAdmin):
    list_display = (
        "bucket", "resolution", "org", "provider", "model", "outcome", "count", "mean", "p50", "p95", "p99",
        "input_tokens", "output_tokens", "cost_usd",
    )
    list_filter = ("resolution", "provider", "outcome", "org")
    search_fields = ("model", "org__slug")
    exclude = ("hist", "hist_offset")
