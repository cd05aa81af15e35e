from django.contrib import admin

from routing.models import RoutingSettings


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(admin.ModelAdmin):
    list_display = ("org", "rule_order", "disabled_rules")
    search_fields = ("org__slug",)
    list_select_related = ("org",)
