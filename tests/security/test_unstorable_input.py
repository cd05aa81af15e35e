"""Text PostgreSQL cannot store (U+0000) sent through the pages' forms: each was a 500
(psycopg's "unsupported Unicode escape sequence" or "cannot contain NUL") after the service had
accepted it. Now the service refuses it with a message naming the field, the page shows it, and
nothing is written."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from routing.models import RoutingSettings
from tenants.context import operator_context, tenant_context
from tenants.models import Organization
from threads.models import MemorySettings, Thread

NUL = "bad\x00name"


def _said(response) -> list[str]:
    return [message.message for message in get_messages(response.wsgi_request)]


def test_a_thread_titled_with_a_null_character_is_refused(alice_client, org_a):
    response = alice_client.post("/threads/new/", {"title": NUL})
    assert response.status_code == 302
    assert any("The title contains a null character" in said for said in _said(response))
    with tenant_context(org_a):
        assert not Thread.objects.exists()


def test_a_thread_renamed_with_a_null_character_keeps_its_title(alice_client, org_a):
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a, title="Lisbon trip")
    response = alice_client.post(f"/threads/{thread.pk}/rename/", {"title": NUL}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and b"Lisbon trip" in response.content
    with tenant_context(org_a):
        assert Thread.objects.get(pk=thread.pk).title == "Lisbon trip"


def test_searching_threads_for_a_null_character_finds_nothing(alice_client, org_a):
    with tenant_context(org_a):
        Thread.objects.create(org=org_a, title="bad name")
    response = alice_client.get("/threads/", {"q": NUL})
    assert response.status_code == 200 and b"bad name" not in response.content
    assert b"bad name" in alice_client.get("/threads/", {"q": "bad"}).content


def test_an_org_named_with_a_null_character_is_refused(alice_client):
    response = alice_client.post("/orgs/new/", {"name": NUL})
    assert response.status_code == 400 and b"null character" in response.content
    with operator_context(reason="test", audit=False):
        assert not Organization.objects.filter(name__startswith="bad").exists()


def test_a_routing_model_with_a_null_character_is_refused(alice_client, org_a):
    response = alice_client.post("/settings/routing/save/", {"model_web": NUL, "enabled_web": "on", "position_web": "1"})
    assert response.status_code == 302
    assert any("The model for web contains a null character" in said for said in _said(response))
    with tenant_context(org_a):
        assert not RoutingSettings.objects.filter(org=org_a).exists()


def test_an_embedding_model_with_a_null_character_is_refused(alice_client, org_a):
    response = alice_client.post("/memory/settings/", {"enabled": "on", "embedding_model": NUL})
    assert response.status_code == 302
    assert any("The embedding model name contains a null character" in said for said in _said(response))
    with tenant_context(org_a):
        assert not MemorySettings.objects.filter(org=org_a, embedding_model__contains="bad").exists()


def test_the_api_refuses_it_too(alice_client):
    """The API's serializers refuse U+0000 in their text fields before the services see it."""
    response = alice_client.post("/api/v1/threads/", {"title": NUL}, content_type="application/json")
    assert response.status_code == 400 and "null" in response.json()["error"]["message"].lower()
    response = alice_client.patch("/api/v1/routing/settings", {"models": {"web": NUL}}, content_type="application/json")
    assert response.status_code == 400 and "null" in response.json()["error"]["message"].lower()
