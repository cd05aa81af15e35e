from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from tenants.models import ApiToken, Membership, Organization, User, UserAgentPermission


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "context_window", "is_demo", "expires_at", "created_at")
    list_filter = ("is_demo",)
    search_fields = ("name", "slug")
    readonly_fields = ("created_at",)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "first_name", "last_name", "is_superuser", "is_active", "last_login")
    search_fields = ("email", "first_name", "last_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "org", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "org__slug", "org__name")
    list_select_related = ("user", "org")
    autocomplete_fields = ("user", "org")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "org", "prefix", "created_by", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "org__slug")
    list_select_related = ("org", "created_by")
    # The hash never leaves the database through the admin; tokens are made in the app.
    exclude = ("secret_hash",)
    readonly_fields = ("org", "prefix", "created_by", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False


@admin.register(UserAgentPermission)
class UserAgentPermissionAdmin(admin.ModelAdmin):
    list_display = ("user", "org", "provider", "allowed")
    list_filter = ("provider", "allowed")
    search_fields = ("user__email", "org__slug")
    list_select_related = ("user", "org")
