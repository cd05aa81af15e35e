from django.contrib import admin

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "org", "seq", "event", "actor_type", "actor_label", "target")
    list_filter = ("event", "actor_type")
    search_fields = ("event", "actor_label", "target", "org__slug")
    list_select_related = ("org",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
