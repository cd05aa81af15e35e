"""The /memory/ page and /api/v1/memory/: search, remove a message, settings; every persona,
htmx and plain requests, bad input in the API error shape."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import NoReverseMatch, include, path, reverse

from audit.models import AuditLog
from audit.services import Actor
from tenants.context import tenant_context
from tests.factories import api_token_for
from tests.threads.test_memory import fresh_memory, make_thread, noise, points  # noqa: F401 - fresh_memory is autouse
from threads.memory.urls import memory_api_urlpatterns, memory_urlpatterns
from threads.models import MemorySettings


def _project_urlpatterns() -> list:
    """The project's URLs, plus the memory routes until dac/urls.py includes them itself."""
    import dac.urls

    try:
        reverse("memory:search", urlconf="dac.urls")
        return list(dac.urls.urlpatterns)
    except NoReverseMatch:
        return [
            path("api/v1/", include((memory_api_urlpatterns, "api"), namespace="memory-api")),
            path("", include((memory_urlpatterns, "memory"))),
            *dac.urls.urlpatterns,
        ]


urlpatterns = _project_urlpatterns()

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.urls(__name__)]


def _token_client(org) -> Client:
    token = api_token_for(org, "memory")
    return Client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def api_a(org_a):
    return _token_client(org_a)


@pytest.fixture
def api_b(org_b, charlie):
    return _token_client(org_b)


@pytest.fixture
def bakery(org_a):
    noise(org_a)
    thread, messages = make_thread(org_a, "Bakery names", "Name ideas for our sourdough bakery?", "Call the sourdough bakery Crumb and Co.")
    return thread, messages


# --- the page ---


def test_a_member_searches_the_orgs_memory_and_gets_snippets_links_and_scores(bob_client, bakery):
    thread, (_, answer) = bakery
    response = bob_client.get("/memory/", {"q": "sourdough bakery name"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" in page and "Crumb and Co" in page
    assert f'href="/threads/{thread.pk}/#message-{answer.pk}"' in page
    assert "score" in page and "Bakery names" in page
    assert response["Vary"].count("HX-Request")


def test_htmx_search_returns_only_the_results(bob_client, bakery):
    response = bob_client.get("/memory/", {"q": "sourdough"}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert 'id="memory-results"' in page and "Crumb and Co" in page


def test_the_page_without_a_query_shows_the_state_of_memory(bob_client, bakery):
    page = bob_client.get("/memory/").content.decode()
    assert "Memory is <strong>on</strong>" in page
    assert "Save memory settings" not in page  # members do not manage settings


def test_charlie_finds_nothing_of_org_a(charlie_client, bakery):
    page = charlie_client.get("/memory/", {"q": "sourdough bakery Crumb"}).content.decode()
    assert "Crumb and Co" not in page and "Nothing in memory matches" in page


def test_an_empty_search_on_the_page_is_just_the_page(bob_client, bakery):
    response = bob_client.get("/memory/", {"q": "   "})
    assert response.status_code == 200 and "Nothing in memory matches" not in response.content.decode()


def test_removing_a_message_from_memory_on_the_page(bob_client, org_a, bakery):
    _, (_, answer) = bakery
    response = bob_client.post(f"/memory/messages/{answer.pk}/forget/", {"q": "sourdough"})
    assert response.status_code == 302 and response["Location"] == "/memory/?q=sourdough"
    assert answer.pk not in {p.id for p in points()}
    page = bob_client.get("/memory/", {"q": "sourdough bakery"}).content.decode()
    assert "Crumb and Co" not in page and "Name ideas" in page


def test_removing_with_htmx_swaps_the_row(bob_client, bakery):
    _, (question, _) = bakery
    response = bob_client.post(f"/memory/messages/{question.pk}/forget/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Removed from memory" in response.content.decode() and "<html" not in response.content.decode()


def test_charlie_cannot_remove_org_as_memories(charlie_client, bakery):
    _, (question, _) = bakery
    assert charlie_client.post(f"/memory/messages/{question.pk}/forget/").status_code == 404
    assert question.pk in {p.id for p in points()}


def test_an_anonymous_visitor_is_sent_to_log_in(bakery):
    response = Client().get("/memory/", {"q": "sourdough"})
    assert response.status_code == 302 and "/login" in response["Location"]


def test_an_admin_turns_memory_off_and_members_cannot(alice_client, bob_client, org_a, bakery):
    assert bob_client.post("/memory/settings/", {"top_k": "5"}).status_code == 403
    page = alice_client.get("/memory/").content.decode()
    assert "Save memory settings" in page
    response = alice_client.post("/memory/settings/", {"top_k": "5", "min_score": "", "embeddings": ""})
    assert response.status_code == 302
    with tenant_context(org_a):
        row = MemorySettings.objects.get()
    assert (row.enabled, row.top_k, row.min_score) == (False, 5, None)
    page = bob_client.get("/memory/", {"q": "sourdough"}).content.decode()
    assert "Memory is off" in page and "Crumb and Co" not in page


def test_bad_settings_are_refused_with_a_message(alice_client, org_a):
    response = alice_client.post("/memory/settings/", {"enabled": "on", "top_k": "500"}, follow=True)
    assert "from 0 to 20" in response.content.decode()
    with tenant_context(org_a):
        assert not MemorySettings.objects.exists()


# --- the API ---


def test_api_search_returns_ranked_results(api_a, bakery):
    thread, (question, answer) = bakery
    response = api_a.get("/api/v1/memory/search", {"q": "sourdough bakery name"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is True and body["mode"] == "lexical"
    assert {r["message_id"] for r in body["results"]} == {question.pk, answer.pk}
    first = body["results"][0]
    assert set(first) == {"message_id", "thread_id", "thread_title", "role", "snippet", "score", "created_at"}
    assert first["thread_id"] == thread.pk and first["score"] >= body["results"][-1]["score"] > 0


def test_api_search_limit(api_a, bakery):
    body = api_a.get("/api/v1/memory/search/", {"q": "sourdough bakery", "limit": 1}).json()
    assert len(body["results"]) == 1


def test_charlie_api_search_gets_nothing_of_org_a(api_b, bakery):
    body = api_b.get("/api/v1/memory/search", {"q": "sourdough bakery Crumb"}).json()
    assert body["results"] == []


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [({"q": ""}, "q", "empty"), ({}, "q", "empty"), ({"q": "   "}, "q", "empty"), ({"q": "x" * 501}, "q", "too_long"),
     ({"q": "bakery", "limit": "abc"}, "limit", "invalid"), ({"q": "bakery", "limit": 0}, "limit", "invalid"), ({"q": "bakery", "limit": 51}, "limit", "invalid")],
)
def test_api_bad_search_input_is_a_400_in_the_error_shape(api_a, params, field, code):
    response = api_a.get("/api/v1/memory/search", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["message"] and error["detail"] == {field: code}


def test_api_search_needs_authentication():
    response = Client().get("/api/v1/memory/search", {"q": "bakery"})
    assert response.status_code in (401, 403) and "error" in response.json()


def test_api_removes_a_message_from_memory(api_a, org_a, bakery):
    _, (_, answer) = bakery
    response = api_a.delete(f"/api/v1/memory/messages/{answer.pk}")
    assert response.status_code == 204
    assert answer.pk not in {p.id for p in points()}
    body = api_a.get("/api/v1/memory/search", {"q": "sourdough bakery"}).json()
    assert answer.pk not in {r["message_id"] for r in body["results"]}
    assert api_a.delete(f"/api/v1/memory/messages/{answer.pk}/").status_code == 204  # idempotent
    with tenant_context(org_a):
        assert AuditLog.objects.filter(event="memory.forget", target=f"message:{answer.pk}").count() == 2


def test_charlie_gets_404_for_org_as_message_ids(api_b, bakery):
    _, (question, _) = bakery
    response = api_b.delete(f"/api/v1/memory/messages/{question.pk}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api_b.delete("/api/v1/memory/messages/999999999").status_code == 404
    assert question.pk in {p.id for p in points()}


def test_api_settings_members_read_admins_change(api_a, alice_client, org_a):
    body = api_a.get("/api/v1/memory/settings").json()
    assert body["enabled"] is True and body["top_k"] == 3 and body["backlog_pending"] == 0
    assert api_a.patch("/api/v1/memory/settings", {"top_k": 1}, content_type="application/json").status_code == 403  # tokens act as members
    response = alice_client.patch("/api/v1/memory/settings", {"top_k": 1, "min_score": 0.5}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert (response.json()["top_k"], response.json()["min_score"]) == (1, 0.5)
    bad = alice_client.patch("/api/v1/memory/settings", {"embeddings": "cohere"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_api_search_when_memory_is_off_says_so(api_a, org_a, bakery):
    from threads.memory.services import memory_settings_update

    memory_settings_update(org_id=org_a.pk, actor=Actor.system(), enabled=False)
    body = api_a.get("/api/v1/memory/search", {"q": "sourdough"}).json()
    assert body == {"query": "sourdough", "enabled": False, "mode": "lexical", "results": []}


def test_api_search_with_qdrant_down_is_a_503_in_the_error_shape(api_a, bakery, settings):
    import socket

    from threads.memory import store

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.QDRANT_URL = f"http://127.0.0.1:{port}"
    response = api_a.get("/api/v1/memory/search", {"q": "sourdough"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "memory_unavailable"
    store.reset()
