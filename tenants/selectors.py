"""Reads for tenancy. The two lookups that must cross orgs go through SECURITY DEFINER
functions (see migration 0002), so the runtime role itself never bypasses RLS."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet

from tenants.models import ApiToken, Membership, Role


@dataclass(frozen=True, slots=True)
class OrgAccess:
    """One org the caller belongs to, and their role there."""

    org_id: int
    slug: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    org_id: int
    secret_hash: str
    expires_at: object
    revoked_at: object
    name: str


def user_orgs(*, user_id: int) -> list[OrgAccess]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT org_id, slug, name, role FROM dac_user_orgs(%s)", [user_id])
        return [OrgAccess(*row) for row in cursor.fetchall()]


@dataclass(frozen=True)
class Invitation:
    membership_id: int
    org_id: int
    org_name: str
    role: str
    invited_at: object


def user_invitations(*, user_id: int) -> list[Invitation]:
    """The memberships waiting for this user to accept them, across orgs."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT membership_id, org_id, org_name, role, invited_at FROM dac_user_invitations(%s)", [user_id])
        return [Invitation(*row) for row in cursor.fetchall()]


def api_token_lookup(*, prefix: str) -> TokenRecord | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, org_id, secret_hash, expires_at, revoked_at, name FROM dac_api_token_lookup(%s)",
            [prefix],
        )
        row = cursor.fetchone()
    return TokenRecord(*row) if row else None


def membership_list() -> QuerySet[Membership]:
    return Membership.objects.select_related("user").order_by("created_at")


def membership_get(*, membership_id: int) -> Membership:
    return Membership.objects.select_related("user").get(pk=membership_id)


def api_token_list() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("created_by").order_by("-created_at")
