"""/api/v1/audit/: owners and admins; filters, pagination, bad input in the error shape."""

import pytest
from django.test import Client

from audit.services import Actor, audit_record
from tenants.context import tenant_context
from tests.assertions import assert_error_shape
from tests.factories import api_token_for

pytestmark = pytest.mark.django_db




@pytest.fixture
def events(org_a, org_b, alice):
    with tenant_context(org_a):
        for i in range(55):
            audit_record(org_id=org_a.id, actor=Actor.user(alice), event="provider.call", target="provider:openai",
                         details={"i": i}, request_hash="a" * 64, response_hash="b" * 64)
        audit_record(org_id=org_a.id, actor=Actor.system("manage.py rotate_keys"), event="provider_key.rotated")
    with tenant_context(org_b):
        audit_record(org_id=org_b.id, actor=Actor.system(), event="provider_key.rotated")


def test_list_is_paginated_newest_first(alice_client, events):
    body = alice_client.get("/api/v1/audit/").json()
    assert body["count"] == 57 and len(body["results"]) == 50 and body["next"]
    assert body["results"][0]["seq"] == 57 and body["results"][0]["event"] == "provider_key.rotated"
    assert set(body["results"][1]) >= {"seq", "created_at", "event", "actor_label", "details", "request_hash", "response_hash", "prev_hash", "hash"}
    assert len(alice_client.get("/api/v1/audit/?page=2").json()["results"]) == 7


def test_filters(alice_client, events):
    assert alice_client.get("/api/v1/audit/?event=provider_key.rotated").json()["count"] == 1
    assert alice_client.get("/api/v1/audit/?event=provider.*").json()["count"] == 55
    assert alice_client.get("/api/v1/audit/?actor=ALICE").json()["count"] == 55
    assert alice_client.get("/api/v1/audit/?since=2000-01-01&until=2999-12-31").json()["count"] == 57
    assert alice_client.get("/api/v1/audit/?until=2000-01-01").json()["count"] == 0


@pytest.mark.parametrize("query", ["since=not-a-date", "until=2024-13-45", "since=2030-01-02&until=2030-01-01", "event=" + "x" * 65,
                                   "event=a%00b", "actor=a%00b"])
def test_bad_filters_are_400_in_the_error_shape(alice_client, events, query):
    assert_error_shape(alice_client.get(f"/api/v1/audit/?{query}"), 400, "validation_error")


def test_a_page_past_the_end_is_404_in_the_error_shape(alice_client, events):
    assert_error_shape(alice_client.get("/api/v1/audit/?page=9"), 404)


def test_members_and_tokens_get_403(bob_client, org_a, events):
    assert_error_shape(bob_client.get("/api/v1/audit/"), 403)
    token = api_token_for(org_a, "ci")
    assert_error_shape(Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/audit/"), 403)


def test_charlie_gets_404_for_org_a(charlie_client, org_a, events):
    assert_error_shape(charlie_client.get("/api/v1/audit/", headers={"X-Org-Id": str(org_a.id)}), 404)


def test_unauthenticated_is_401(client):
    assert_error_shape(client.get("/api/v1/audit/"), 401)


def test_chain_status(alice_client, events):
    body = alice_client.get("/api/v1/audit/chain/").json()
    assert body == {**body, "ok": True, "count": 57, "head_seq": 57, "full": True, "broken_seq": None, "broken_reason": None}
