from django.contrib import admin

from providers.models import ProviderKey, QuotaLimit


@admin.register(QuotaLimit)
class QuotaLimitAdmin(admin.ModelAdmin):
    list_display = ("org", "provider", "requests_per_day", "tokens_per_day", "updated_at")
    search_fields = ("org__slug", "provider")
    list_select_related = ("org",)


@admin.register(ProviderKey)
class ProviderKeyAdmin(admin.ModelAdmin):
    list_display = ("org", "provider", "masked", "label", "is_active", "last_test_ok", "last_used_at", "created_at")
    list_filter = ("provider", "is_active", "last_test_ok")
    search_fields = ("org__slug", "provider", "label", "masked")
    list_select_related = ("org",)
    # The ciphertext never leaves the database through the admin; keys are added in the app.
    exclude = ("ciphertext",)
    readonly_fields = ("org", "provider", "masked", "created_by", "created_at", "last_used_at", "last_tested_at", "last_test_ok", "last_test_message")

    def has_add_permission(self, request):
        return False
