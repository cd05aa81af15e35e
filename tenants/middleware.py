"""Resolve the current org for each request and bind it to everything the request runs.

Session users: the org comes from `X-Org-Id` (one of the caller's own orgs, never trusted
alone), else the org switcher's choice in the session, else their first org. API tokens carry
their org; DRF's `ApiTokenAuthentication` and the gateway set it themselves. The tenant is
reset when the response leaves, and a streamed body gets the tenant re-bound around its own
iteration, because it runs after this middleware has returned.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async

from dac.errors import error_response
from dac.middleware import BothModesMiddleware
from tenants.context import NO_TENANT, Tenant, current_tenant, reset_tenant, set_tenant
from tenants.selectors import OrgAccess, user_orgs

SESSION_ORG_KEY = "dac_org_id"


class OrgHeaderInvalid(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_org_header(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise OrgHeaderInvalid(400, "X-Org-Id must be the numeric id of one of your organizations.")
    return int(value)


def choose_org(orgs: list[OrgAccess], *, header_org: int | None, session_org: int | None) -> OrgAccess | None:
    by_id = {org.org_id: org for org in orgs}
    if header_org is not None:
        if header_org not in by_id:
            # Same answer for "exists elsewhere" and "does not exist": nothing leaks.
            raise OrgHeaderInvalid(404, "No organization with that X-Org-Id among yours.")
        return by_id[header_org]
    if session_org in by_id:
        return by_id[session_org]
    return orgs[0] if orgs else None


def resolve_session_org(request, user) -> None:
    """Set request.orgs / request.org_access for a signed-in user (sync: it queries)."""
    request.orgs = user_orgs(user_id=user.pk) if user.is_authenticated else []
    request.org_access = choose_org(
        request.orgs,
        header_org=parse_org_header(request.headers.get("X-Org-Id")),
        session_org=request.session.get(SESSION_ORG_KEY) if hasattr(request, "session") else None,
    )


def _has_bearer(request) -> bool:
    return request.headers.get("Authorization", "").startswith("Bearer ")


def bind_stream(response, tenant: Tenant) -> None:
    """Re-bind the tenant around a streamed body, which runs after the middleware returned."""
    inner = response.streaming_content
    if response.is_async:

        async def bound_async():
            token = set_tenant(tenant)
            try:
                async for chunk in inner:
                    yield chunk
            finally:
                _safe_reset(token)

        response.streaming_content = bound_async()
    else:

        def bound_sync():
            token = set_tenant(tenant)
            try:
                yield from inner
            finally:
                _safe_reset(token)

        response.streaming_content = bound_sync()


def _safe_reset(token) -> None:
    try:
        reset_tenant(token)
    except ValueError:  # closed from another context (client went away): just clear it
        set_tenant(NO_TENANT)


class TenantMiddleware(BothModesMiddleware):
    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        request.orgs, request.org_access, request.api_token = [], None, None
        if not _has_bearer(request):
            try:
                resolve_session_org(request, request.user)
            except OrgHeaderInvalid as exc:
                return error_response("invalid_org", exc.message, exc.status)
        token = set_tenant(self._tenant_of(request))
        try:
            response = self.get_response(request)
            if response.streaming:
                bind_stream(response, current_tenant())
            return response
        finally:
            reset_tenant(token)

    async def __acall__(self, request):
        request.orgs, request.org_access, request.api_token = [], None, None
        if not _has_bearer(request):
            user = await request.auser()
            if user.is_authenticated:
                try:
                    await sync_to_async(resolve_session_org)(request, user)
                except OrgHeaderInvalid as exc:
                    return error_response("invalid_org", exc.message, exc.status)
        token = set_tenant(self._tenant_of(request))
        try:
            response = await self.get_response(request)
            if response.streaming:
                bind_stream(response, current_tenant())
            return response
        finally:
            reset_tenant(token)

    @staticmethod
    def _tenant_of(request) -> Tenant:
        access = request.org_access
        return Tenant(org_id=access.org_id) if access else NO_TENANT
