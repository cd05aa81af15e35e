"""Sign-up, log in, members and API token pages, for each persona."""

import pytest

from audit.models import AuditLog
from tenants.context import tenant_context
from tenants.models import ApiToken, Membership, Organization, User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_creates_a_user_and_an_org_they_own(client):
    response = client.post("/signup/", {"email": "new@example.com", "password": PASSWORD, "org_name": "Acme"})
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    from tenants.selectors import user_orgs

    [access] = user_orgs(user_id=user.pk)
    assert access.name == "Acme" and access.role == "owner"
    assert client.get("/dashboard/").status_code == 200


def test_signup_with_a_taken_email_says_so_and_writes_nothing(client, alice):
    users_before = User.objects.count()
    response = client.post("/signup/", {"email": "alice@example.com", "password": PASSWORD, "org_name": "X"})
    assert response.status_code == 400
    assert b"already exists" in response.content
    assert User.objects.count() == users_before


def test_signup_with_a_weak_password_is_refused(client):
    response = client.post("/signup/", {"email": "weak@example.com", "password": "password", "org_name": "X"})
    assert response.status_code == 400
    assert not User.objects.filter(email="weak@example.com").exists()


def test_login_and_logout(client, alice):
    response = client.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/members/").status_code == 200
    client.post("/logout/")
    assert client.get("/members/").status_code == 302


def test_members_page_lists_only_the_current_orgs_members(alice_client, bob, charlie):
    response = alice_client.get("/members/")
    assert b"bob@example.com" in response.content
    assert b"charlie@example.com" not in response.content


def test_owner_adds_an_existing_user_as_member(alice_client, org_a, charlie):
    response = alice_client.post("/members/add/", {"email": "charlie@example.com", "role": "member"})
    assert response.status_code == 302
    with tenant_context(org_a):
        assert Membership.objects.filter(user=charlie).exists()
        assert AuditLog.objects.filter(event="membership.added").exists()


def test_owner_creates_a_new_user_when_adding_with_a_password(alice_client, org_a):
    alice_client.post("/members/add/", {"email": "dora@example.com", "role": "admin", "password": PASSWORD})
    with tenant_context(org_a):
        assert Membership.objects.get(user__email="dora@example.com").role == "admin"


def test_member_cannot_add_members(bob_client, org_a):
    response = bob_client.post("/members/add/", {"email": "eve@example.com", "role": "owner", "password": PASSWORD})
    assert response.status_code == 403
    assert not User.objects.filter(email="eve@example.com").exists()


def test_member_cannot_change_roles(bob_client, org_a, bob):
    with tenant_context(org_a):
        membership = Membership.objects.get(user=bob)
    assert bob_client.post(f"/members/{membership.id}/role/", {"role": "owner"}).status_code == 403
    with tenant_context(org_a):
        assert Membership.objects.get(user=bob).role == "member"


def test_charlie_gets_404_on_org_a_membership(charlie_client, org_a, bob, charlie, org_b):
    with tenant_context(org_b):
        Membership.objects.filter(user=charlie).update(role="owner")
    with tenant_context(org_a):
        membership = Membership.objects.get(user=bob)
    assert charlie_client.post(f"/members/{membership.id}/remove/").status_code == 404
    assert charlie_client.post(f"/members/{membership.id}/role/", {"role": "owner"}).status_code == 404
    with tenant_context(org_a):
        assert Membership.objects.filter(user=bob, role="member").exists()


def test_last_owner_cannot_be_removed(alice_client, alice, org_a):
    with tenant_context(org_a):
        membership = Membership.objects.get(user=alice)
    response = alice_client.post(f"/members/{membership.id}/remove/", follow=True)
    assert b"last owner" in response.content
    with tenant_context(org_a):
        assert Membership.objects.filter(user=alice).exists()


def test_last_owner_cannot_be_demoted(alice_client, alice, org_a):
    with tenant_context(org_a):
        membership = Membership.objects.get(user=alice)
    alice_client.post(f"/members/{membership.id}/role/", {"role": "member"})
    with tenant_context(org_a):
        assert Membership.objects.get(user=alice).role == "owner"


def test_token_is_shown_once_and_stored_hashed(alice_client, org_a):
    response = alice_client.post("/tokens/create/", {"name": "ci"})
    assert response.status_code == 200
    plaintext = response.context["new_token"]
    assert plaintext.startswith("dac_")
    assert plaintext.encode() in response.content
    with tenant_context(org_a):
        token = ApiToken.objects.get(name="ci")
    assert plaintext not in token.secret_hash
    listing = alice_client.get("/tokens/")
    assert plaintext.encode() not in listing.content
    assert token.prefix.encode() in listing.content


def test_the_token_form_sent_again_by_a_reload_does_not_create_a_second_token(alice_client, org_a):
    """The page with the new token is rendered, not redirected to; reloading it (the browser's
    "resubmit the form?") created a second token of the same name."""
    form_id = alice_client.get("/tokens/").context["form_id"]
    first = alice_client.post("/tokens/create/", {"name": "ci", "form_id": form_id})
    assert first.status_code == 200 and first.context["new_token"]
    again = alice_client.post("/tokens/create/", {"name": "ci", "form_id": form_id})
    assert again.status_code == 409 and b"sent already" in again.content and "new_token" not in again.context
    with tenant_context(org_a):
        assert ApiToken.objects.filter(name="ci").count() == 1
    fresh = again.context["form_id"]
    assert fresh != form_id and f'value="{fresh}"'.encode() in again.content
    assert alice_client.post("/tokens/create/", {"name": "ci", "form_id": fresh}).status_code == 200  # a new form, a new token


def test_token_revoke_and_charlie_gets_404(alice_client, charlie_client, org_a, charlie):
    alice_client.post("/tokens/create/", {"name": "ci"})
    with tenant_context(org_a):
        token = ApiToken.objects.get(name="ci")
    assert charlie_client.post(f"/tokens/{token.id}/revoke/").status_code in (403, 404)
    with tenant_context(org_a):
        assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert alice_client.post(f"/tokens/{token.id}/revoke/").status_code == 302
    with tenant_context(org_a):
        assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_org_switcher_only_switches_to_own_orgs(alice_client, alice, org_a, org_b):
    assert alice_client.post("/orgs/switch/", {"org_id": org_b.id}).status_code == 404
    from tenants.services import org_create

    second = org_create(name="Second", slug="second", owner=alice)
    assert alice_client.post("/orgs/switch/", {"org_id": second.id}).status_code == 302
    assert b"Second" in alice_client.get("/dashboard/").content


def test_anonymous_is_sent_to_login(client):
    response = client.get("/members/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_user_with_no_org_is_asked_to_create_one(client):
    user = User.objects.create_user(email="lonely@example.com", password=PASSWORD)
    client.force_login(user)
    response = client.get("/members/")
    assert response.status_code == 302 and response["Location"].endswith("/orgs/new/")
    client.post("/orgs/new/", {"name": "Mine"})
    from tenants.selectors import user_orgs

    assert [o.name for o in user_orgs(user_id=user.pk)] == ["Mine"]


def test_a_page_a_member_may_not_open_is_a_page_of_the_site_that_says_why(bob_client):
    """It was Django's bare "403 Forbidden": no navigation, no reason."""
    response = bob_client.get("/audit/")
    assert response.status_code == 403
    assert b"You cannot open this page" in response.content and b"Only owners and admins" in response.content
    assert b'aria-label="Main"' in response.content  # the site's navigation


def test_a_page_that_is_not_there_is_a_page_of_the_site(alice_client):
    response = alice_client.get("/threads/999999/")
    assert response.status_code == 404 and b"Nothing here" in response.content and b'aria-label="Main"' in response.content


def test_a_database_error_that_retrying_cannot_mend_is_not_reported_as_the_database_being_down():
    """A DataError (U+0000 in a filter reached PostgreSQL) was answered 503 "The database is
    unavailable; retry in a few seconds." with Retry-After: a retry fails the same way."""
    from django.db import DataError, IntegrityError, InterfaceError, OperationalError

    from dac.errors import api_exception_handler, database_unavailable

    assert database_unavailable(OperationalError("connection refused")) and database_unavailable(InterfaceError("closed"))
    assert not database_unavailable(DataError("NUL")) and not database_unavailable(IntegrityError("duplicate"))
    assert api_exception_handler(DataError("NUL"), {}) is None  # left to the 500 handler
    assert api_exception_handler(OperationalError("down"), {}).status_code == 503


@pytest.fixture
def b_owner_client(org_b):
    from django.test import Client

    from tests.factories import member

    client = Client()
    client.force_login(member(org_b, "dave@example.com", "owner"))
    return client


def test_a_user_who_has_an_account_is_invited_not_put_in_another_org_unasked(b_owner_client, alice_client, alice, org_a, org_b):
    """The owner of any org could add any registered address: the org appeared in that user's
    switcher at once, and chatting there sent their messages to that org's keys."""
    from tenants.selectors import user_invitations, user_orgs

    response = b_owner_client.post("/members/add/", {"email": "alice@example.com", "role": "member"}, follow=True)
    assert b"invited as member" in response.content and b"invited</span>" in response.content
    assert [org.org_id for org in user_orgs(user_id=alice.pk)] == [org_a.pk]  # not in org B yet
    assert alice_client.get("/threads/", headers={"X-Org-Id": str(org_b.pk)}).status_code == 404
    [invitation] = user_invitations(user_id=alice.pk)
    page = alice_client.get("/threads/")
    assert b"Org B invites you to join as member" in page.content
    assert alice_client.post(f"/invitations/{invitation.membership_id}/accept/").status_code == 302
    assert {org.org_id for org in user_orgs(user_id=alice.pk)} == {org_a.pk, org_b.pk} and not user_invitations(user_id=alice.pk)
    assert alice_client.get("/threads/", headers={"X-Org-Id": str(org_b.pk)}).status_code == 200
    with tenant_context(org_b):
        rows = list(AuditLog.objects.filter(event__startswith="membership.").order_by("seq"))
    assert [(row.event, row.details.get("invited")) for row in rows] == [("membership.added", True), ("membership.accepted", None)]


def test_an_invitation_declined_is_gone_and_only_its_user_may_answer_it(b_owner_client, alice_client, bob_client, alice, org_b):
    from tenants.selectors import user_invitations, user_orgs

    b_owner_client.post("/members/add/", {"email": "alice@example.com", "role": "admin"})
    [invitation] = user_invitations(user_id=alice.pk)
    assert bob_client.post(f"/invitations/{invitation.membership_id}/accept/").status_code == 404  # not bob's
    assert alice_client.post(f"/invitations/{invitation.membership_id}/decline/").status_code == 302
    assert not user_invitations(user_id=alice.pk) and org_b.pk not in [org.org_id for org in user_orgs(user_id=alice.pk)]
    with tenant_context(org_b):
        assert not Membership.objects.filter(user=alice).exists()
        assert AuditLog.objects.filter(event="membership.declined").exists()
    assert alice_client.post(f"/invitations/{invitation.membership_id}/accept/").status_code == 404  # answered already


def test_a_new_address_with_a_password_is_a_member_at_once(b_owner_client, org_b):
    from tenants.selectors import user_orgs

    b_owner_client.post("/members/add/", {"email": "erin@example.com", "role": "member", "password": PASSWORD})
    assert [org.org_id for org in user_orgs(user_id=User.objects.get(email="erin@example.com").pk)] == [org_b.pk]
