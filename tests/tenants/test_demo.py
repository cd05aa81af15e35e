"""The public demo: a sandbox org per visitor session, strict limits, throttled, purged."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from providers.services import quota
from providers.services.limits import effective_limits
from tenants import demo
from tenants.context import operator_context, tenant_context
from tenants.models import ApiToken, Membership, Organization, User
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_throttle_keys(monkeypatch):
    """Each test counts sandbox creations under its own cache keys."""
    monkeypatch.setattr(demo, "THROTTLE_KEY", f"dac:test:{uuid.uuid4().hex}:demo")


def _all_orgs():
    with operator_context(reason="test", audit=False):
        return list(Organization.objects.order_by("pk"))


def _demo_orgs():
    return [org for org in _all_orgs() if org.is_demo]


def _thread_id(response) -> int:
    match = re.fullmatch(r"/threads/(\d+)/", response["Location"])
    assert match, response["Location"]
    return int(match.group(1))


def _visit(client: Client | None = None, ip: str = "203.0.113.7"):
    client = client or Client()
    return client, client.get("/demo", REMOTE_ADDR=ip)


def test_first_visit_creates_a_sandbox_signs_in_and_opens_its_chat():
    client, response = _visit()
    assert response.status_code == 302
    thread_id = _thread_id(response)
    [org] = _demo_orgs()
    assert org.name == "Demo sandbox"
    assert timedelta(hours=23, minutes=59) < org.expires_at - timezone.now() <= timedelta(days=1)
    with tenant_context(org):
        membership = Membership.objects.select_related("user").get()
        assert Thread.objects.get().pk == thread_id
    visitor = membership.user
    assert membership.role == "owner"
    assert re.fullmatch(r"visitor-[0-9a-f]{16}@demo\.invalid", visitor.email)
    assert not visitor.has_usable_password()
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="composer"' in html and "data-demo-banner" in html
    assert "You are in a demo sandbox" in html and 'href="/signup/"' in html
    assert "Leave the demo" in html and "Log out" not in html


def test_the_same_session_comes_back_to_the_same_sandbox():
    client, first = _visit()
    _, second = _visit(client)
    assert second.status_code == 302 and second["Location"] == first["Location"]
    assert len(_demo_orgs()) == 1
    # /demo/ with a slash is the same page
    assert client.get("/demo/", REMOTE_ADDR="203.0.113.7")["Location"] == first["Location"]


def test_another_session_gets_a_sandbox_of_its_own():
    _, first = _visit()
    _, second = _visit()
    assert first["Location"] != second["Location"]
    assert len(_demo_orgs()) == 2


def test_an_expired_sandbox_is_replaced_by_a_fresh_one():
    client, first = _visit()
    [old] = _demo_orgs()
    with operator_context(reason="test", audit=False):
        Organization.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    _, second = _visit(client)
    assert second["Location"] != first["Location"]
    fresh = [org for org in _demo_orgs() if org.pk != old.pk]
    assert len(fresh) == 1 and fresh[0].expires_at > timezone.now()


def test_sandbox_limits_are_strict_and_hold():
    _visit()
    [org] = _demo_orgs()
    with tenant_context(org):
        for provider in ("demo", "openai", "perplexity"):
            assert effective_limits(org_id=org.pk, provider=provider) == (demo.REQUESTS_PER_DAY, demo.TOKENS_PER_DAY)
    for _ in range(demo.REQUESTS_PER_DAY):
        quota.quota_reserve(org_id=org.pk, provider="demo", estimated_tokens=1)
    with pytest.raises(quota.QuotaExceeded):
        quota.quota_reserve(org_id=org.pk, provider="demo", estimated_tokens=1)


@pytest.mark.django_db(transaction=True)  # the pipeline's steps run on pool threads: data must be committed
def test_the_demo_provider_answers_in_the_sandbox_without_keys():
    client, response = _visit()
    thread_id = _thread_id(response)
    sent = client.post(f"/threads/{thread_id}/messages/", {"content": "What is a sandbox?"})
    assert sent.status_code == 302
    [org] = _demo_orgs()
    with tenant_context(org):
        answer = Message.objects.get(thread_id=thread_id, role="assistant")
    assert answer.status == "complete" and answer.provider == "demo" and answer.content


def test_sandbox_creation_is_throttled_per_address():
    for _ in range(demo.CREATIONS_PER_HOUR):
        assert _visit(ip="198.51.100.20")[1].status_code == 302
    _, refused = _visit(ip="198.51.100.20")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "Too many demo sandboxes" in refused.content.decode()
    assert len(_demo_orgs()) == demo.CREATIONS_PER_HOUR
    assert _visit(ip="198.51.100.21")[1].status_code == 302  # another address is not affected


def test_a_returning_session_is_not_counted_against_the_throttle():
    client, _ = _visit(ip="198.51.100.30")
    for _ in range(demo.CREATIONS_PER_HOUR + 2):
        assert _visit(client, ip="198.51.100.30")[1].status_code == 302
    assert len(_demo_orgs()) == 1


class _UnreachableCache:
    """What django-redis answers with IGNORE_EXCEPTIONS while Redis is down."""

    def add(self, *args, **kwargs):
        return None

    def incr(self, *args, **kwargs):
        return None


def test_when_the_cache_cannot_count_no_sandbox_is_created(monkeypatch):
    monkeypatch.setattr(demo, "cache", _UnreachableCache())
    _, response = _visit()
    assert response.status_code == 503 and "cannot start right now" in response.content.decode()
    assert _demo_orgs() == []


def test_head_requests_do_not_create_sandboxes():
    assert Client().head("/demo").status_code == 405
    assert _demo_orgs() == []


def test_a_signed_in_member_is_not_moved_into_a_sandbox(alice_client):
    response = alice_client.get("/demo")
    assert response.status_code == 302 and response["Location"] == "/threads/"
    assert _demo_orgs() == []


def test_the_banner_shows_only_in_demo_sandboxes(alice_client):
    assert "data-demo-banner" not in alice_client.get("/threads/").content.decode()
    client, _ = _visit()
    for path in ("/threads/", "/settings/providers/", "/members/", "/dashboard/"):
        assert "data-demo-banner" in client.get(path).content.decode()


def test_the_sandbox_cannot_add_users_or_mint_api_tokens():
    client, _ = _visit()
    response = client.post("/members/add/", {"email": "mallory@example.com", "role": "admin", "password": "a long enough password 1"})
    assert response.status_code == 302 and response["Location"] == "/members/"
    assert not User.objects.filter(email="mallory@example.com").exists()
    response = client.post("/tokens/create/", {"name": "scraper"})
    assert response.status_code == 302
    [org] = _demo_orgs()
    with tenant_context(org):
        assert not ApiToken.objects.exists()


def test_a_sandbox_visitor_gets_404_on_other_orgs_threads(org_a):
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a, title="Org A secrets")
    client, _ = _visit()
    assert client.get(f"/threads/{thread.pk}/").status_code == 404
    assert client.post(f"/threads/{thread.pk}/messages/", {"content": "hi"}).status_code == 404


def test_purge_deletes_expired_sandboxes_with_their_threads_and_visitors(org_a):
    expired_client, expired_response = _visit()
    _visit()  # still valid: must survive
    expired_thread = _thread_id(expired_response)
    expired_client.post(f"/threads/{expired_thread}/messages/", {"content": "hello"})
    old, current = _demo_orgs()
    with tenant_context(old):
        visitor = Membership.objects.get().user
    # A second sandbox member who also belongs to a real org keeps their account.
    kept = User.objects.create_user(email="kept@example.com", password="x" * 12)
    with tenant_context(org_a):
        Membership.objects.create(org=org_a, user=kept, role="member")
    with tenant_context(old):
        Membership.objects.create(org=old, user=kept, role="member")
    with operator_context(reason="test", audit=False):
        Organization.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    from io import StringIO

    out = StringIO()
    call_command("purge_demo", stdout=out)
    assert "Purged 1 expired demo sandbox and 1 visitor account." in out.getvalue()
    assert [org.pk for org in _demo_orgs()] == [current.pk]
    assert not User.objects.filter(pk=visitor.pk).exists()
    assert User.objects.filter(pk=kept.pk).exists()
    with operator_context(reason="test", audit=False):
        assert not Thread.objects.filter(org_id=old.pk).exists()
        assert not Message.objects.filter(org_id=old.pk).exists()
        assert Thread.objects.filter(org_id=current.pk).exists()
    # The expired visitor's session is simply signed out now.
    assert expired_client.get("/threads/").status_code == 302

    out = StringIO()
    call_command("purge_demo", stdout=out)
    assert "Purged 0 expired demo sandboxes and 0 visitor accounts." in out.getvalue()
