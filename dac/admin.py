"""The operator admin: superusers only, every view run through the audited operator path."""

from __future__ import annotations

from functools import wraps

from django.contrib import admin

from tenants.context import operator_context


class OperatorAdminSite(admin.AdminSite):
    site_header = "DAC operator admin"
    site_title = "DAC admin"
    index_title = "Every organization"

    def has_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def operator_view(request, *args, **kwargs):
            if not self.has_permission(request):
                return inner(request, *args, **kwargs)  # redirects to the login page
            reason = f"admin {request.method} {request.path}"
            with operator_context(reason=reason, actor=request.user.email):
                response = inner(request, *args, **kwargs)
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()  # templates query lazily: render inside the context
                return response

        return operator_view
