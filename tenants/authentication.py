"""DRF authentication: bearer API tokens (which carry their org) and browser sessions."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from tenants.context import Tenant, set_tenant
from tenants.middleware import OrgHeaderInvalid, parse_org_header
from tenants.selectors import OrgAccess
from tenants.services import TokenInvalid, api_token_authenticate


class TokenUser:
    """The principal of a token request: the org, acting through the token."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_superuser = False
    is_staff = False
    pk = None
    id = None
    email = ""

    def __init__(self, token):
        self.token = token

    def __str__(self) -> str:
        return f"API token {self.token.name}"


def bearer_token(request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header[len("Bearer "):].strip()


def authenticate_token_request(request) -> TokenUser:
    """Authenticate a bearer token and bind its org to the request (and the tenant)."""
    plaintext = bearer_token(request)
    if not plaintext:
        raise TokenInvalid("Missing API token.")
    token = api_token_authenticate(plaintext=plaintext)
    token_org_bind(request, token)
    request.api_token = token
    set_tenant(Tenant(org_id=token.org_id))  # the middleware resets it when the response leaves
    return TokenUser(token)


def token_org_bind(request, token) -> None:
    """The request acts in the token's org (the REST API's and the gateway's): `X-Org-Id`, when
    sent, must name it (OrgHeaderInvalid: 400 for garbage, 404 for another org), and a token acts
    with member rights (admin operations need a signed-in admin)."""
    header_org = parse_org_header(request.headers.get("X-Org-Id"))
    if header_org is not None and header_org != token.org_id:
        raise OrgHeaderInvalid(404, "No organization with that X-Org-Id for this token.")
    request.org_access = OrgAccess(org_id=token.org_id, slug="", name="", role="member")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        if bearer_token(request) is None:
            return None
        try:
            user = authenticate_token_request(request._request)
        except TokenInvalid as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        except OrgHeaderInvalid as exc:  # 400 for a header that is no org id, 404 for another org's
            raise (exceptions.ValidationError if exc.status == 400 else exceptions.NotFound)(exc.message) from None
        request.api_token = user.token
        return user, user.token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class OrgSessionAuthentication(authentication.SessionAuthentication):
    """Browser sessions (CSRF enforced); the tenant middleware has already chosen the org."""
