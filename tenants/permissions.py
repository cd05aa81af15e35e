from rest_framework.permissions import BasePermission


class IsOrgMember(BasePermission):
    message = "You are not a member of an organization; create or join one first."

    def has_permission(self, request, view):
        return getattr(request._request, "org_access", None) is not None


class IsOrgAdmin(BasePermission):
    message = "Only owners and admins of this organization can do this (API tokens act as members)."

    def has_permission(self, request, view):
        access = getattr(request._request, "org_access", None)
        return access is not None and access.is_admin
