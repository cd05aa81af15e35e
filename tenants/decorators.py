"""View guards: a signed-in member of the current org, or an admin of it."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect


def org_member_required(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.org_access is None:
            return redirect("tenants:org_create")
        return view(request, *args, **kwargs)

    return wrapper


def org_admin_required(view):
    @org_member_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.org_access.is_admin:
            raise PermissionDenied("Only owners and admins of this organization can do this.")
        return view(request, *args, **kwargs)

    return wrapper
