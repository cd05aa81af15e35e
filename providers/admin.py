from django.contrib import admin

from providers.models import QuotaLimit


@admin.register(QuotaLimit)
class QuotaLimitAdmin(admin.ModelAdmin):
    list_display = ("org", "provider", "requests_per_day", "tokens_per_day", "updated_at")
    search_fields = ("org__slug", "provider")
    list_select_related = ("org",)
