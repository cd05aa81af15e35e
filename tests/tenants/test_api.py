"""The DRF tenancy API: auth, org selection, personas, and bad input in the one error shape."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.services import Actor
from tenants.context import tenant_context
from tenants.models import ApiToken, Membership
from tenants.services import api_token_create
from tests.assertions import assert_error_shape
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _token(org, name="ci", **kwargs) -> str:
    with tenant_context(org):
        return api_token_create(org_id=org.id, name=name, created_by=None, actor=Actor.system(), **kwargs).plaintext


def _bearer(token: str, **headers) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}", **headers})


def test_token_lists_its_own_orgs_members_only(org_a, alice, bob, charlie):
    response = _bearer(_token(org_a)).get("/api/v1/members/")
    assert response.status_code == 200
    emails = {row["email"] for row in response.json()["results"]} if "results" in response.json() else {row["email"] for row in response.json()}
    assert emails == {"alice@example.com", "bob@example.com"}


def test_session_user_lists_orgs_with_current_flag(alice_client, org_a):
    [org] = alice_client.get("/api/v1/orgs/").json()
    assert org == {"id": org_a.id, "slug": "org-a", "name": "Org A", "role": "owner", "current": True}


def test_missing_auth_is_401_in_the_error_shape(client, org_a):
    assert_error_shape(client.get("/api/v1/members/"), 401, "not_authenticated")


def test_wrong_token_is_401(org_a):
    token = _token(org_a)
    assert_error_shape(_bearer(token[:-3] + "xyz").get("/api/v1/members/"), 401)
    assert_error_shape(_bearer("not-a-dac-token").get("/api/v1/members/"), 401)


def test_revoked_token_is_401(org_a):
    token = _token(org_a)
    with tenant_context(org_a):
        ApiToken.objects.update(revoked_at=timezone.now())
    response = _bearer(token).get("/api/v1/members/")
    assert_error_shape(response, 401)
    assert "revoked" in response.json()["error"]["message"]


def test_expired_token_is_401(org_a):
    token = _token(org_a)
    with tenant_context(org_a):
        ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _bearer(token).get("/api/v1/members/")
    assert_error_shape(response, 401)
    assert "expired" in response.json()["error"]["message"]


def test_token_with_a_foreign_x_org_id_is_404(org_a, org_b):
    assert_error_shape(_bearer(_token(org_a), **{"X-Org-Id": str(org_b.id)}).get("/api/v1/members/"), 404)


def test_malformed_x_org_id_is_400(alice_client, org_a):
    assert_error_shape(alice_client.get("/api/v1/members/", headers={"X-Org-Id": "abc"}), 400, "invalid_org")


def test_foreign_x_org_id_for_a_session_user_is_404(alice_client, org_b):
    assert_error_shape(alice_client.get("/api/v1/members/", headers={"X-Org-Id": str(org_b.id)}), 404)


def test_x_org_id_picks_among_the_callers_orgs(alice_client, alice, org_a):
    from tenants.services import org_create

    second = org_create(name="Second", slug="second", owner=alice)
    response = alice_client.get("/api/v1/members/", headers={"X-Org-Id": str(second.id)})
    assert response.status_code == 200
    current = [o for o in alice_client.get("/api/v1/orgs/", headers={"X-Org-Id": str(second.id)}).json() if o["current"]]
    assert current[0]["slug"] == "second"


def test_token_cannot_manage_members(org_a):
    response = _bearer(_token(org_a)).post("/api/v1/members/", {"email": "x@example.com", "password": PASSWORD}, content_type="application/json")
    assert_error_shape(response, 403)


def test_bob_cannot_create_tokens_or_change_roles(bob_client, org_a, alice):
    assert_error_shape(bob_client.post("/api/v1/tokens/", {"name": "x"}, content_type="application/json"), 403)
    with tenant_context(org_a):
        membership = Membership.objects.get(user=alice)
        assert not ApiToken.objects.exists()
    assert_error_shape(bob_client.patch(f"/api/v1/members/{membership.id}/", {"role": "member"}, content_type="application/json"), 403)


def test_charlie_gets_404_on_org_a_objects(charlie_client, org_a, bob, charlie, org_b):
    with tenant_context(org_b):
        Membership.objects.filter(user=charlie).update(role="owner")
    with tenant_context(org_a):
        membership = Membership.objects.get(user=bob)
    _token(org_a)
    with tenant_context(org_a):
        token = ApiToken.objects.get()
    assert_error_shape(charlie_client.patch(f"/api/v1/members/{membership.id}/", {"role": "admin"}, content_type="application/json"), 404)
    assert_error_shape(charlie_client.delete(f"/api/v1/members/{membership.id}/"), 404)
    assert_error_shape(charlie_client.post(f"/api/v1/tokens/{token.id}/revoke/"), 404)
    with tenant_context(org_a):
        assert Membership.objects.get(pk=membership.pk).role == "member"
        assert ApiToken.objects.get().revoked_at is None


def test_admin_creates_a_token_shown_once(alice_client, org_a):
    response = alice_client.post("/api/v1/tokens/", {"name": "deploy"}, content_type="application/json")
    assert response.status_code == 201
    plaintext = response.json()["token"]
    listing = alice_client.get("/api/v1/tokens/").json()
    assert plaintext not in str(listing)
    assert _bearer(plaintext).get("/api/v1/members/").status_code == 200


def test_bad_input_is_400_and_writes_nothing(alice_client, org_a):
    assert_error_shape(alice_client.post("/api/v1/tokens/", {"name": ""}, content_type="application/json"), 400, "validation_error")
    assert_error_shape(alice_client.post("/api/v1/tokens/", "{not json", content_type="application/json"), 400)
    assert_error_shape(alice_client.post("/api/v1/members/", {"email": "nope", "role": "king"}, content_type="application/json"), 400)
    with tenant_context(org_a):
        assert not ApiToken.objects.exists()
        assert Membership.objects.count() == 1


def test_api_session_writes_need_csrf(alice, org_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert_error_shape(client.post("/api/v1/tokens/", {"name": "x"}, content_type="application/json"), 403)


def test_last_owner_cannot_be_removed_through_the_api(alice_client, alice, org_a):
    with tenant_context(org_a):
        membership = Membership.objects.get(user=alice)
    assert_error_shape(alice_client.delete(f"/api/v1/members/{membership.id}/"), 409)


def test_openapi_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
