"""The threads pages: list, search, archive, chat (with and without HX-Request), the SSE send."""

from __future__ import annotations

import httpx
import pytest

from tenants.context import tenant_context
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


def _thread(org, title="Trip planning", **kwargs) -> Thread:
    with tenant_context(org):
        return Thread.objects.create(org=org, title=title, **kwargs)


def test_thread_list_shows_only_the_orgs_threads(alice_client, org_a, org_b):
    _thread(org_a, "Alpha plans")
    _thread(org_b, "Bravo secrets")
    page = alice_client.get("/threads/")
    assert b"Alpha plans" in page.content and b"Bravo secrets" not in page.content


def test_search_by_title_returns_the_rows_partial_for_htmx(alice_client, org_a):
    _thread(org_a, "Alpha plans")
    _thread(org_a, "Budget review")
    response = alice_client.get("/threads/?q=budget", headers={"HX-Request": "true"})
    assert b"Budget review" in response.content and b"Alpha plans" not in response.content
    assert b"<html" not in response.content
    assert response["Vary"].find("HX-Request") >= 0


def test_new_thread_and_archive(alice_client, org_a):
    response = alice_client.post("/threads/new/")
    assert response.status_code == 302
    with tenant_context(org_a):
        thread = Thread.objects.get()
    alice_client.post(f"/threads/{thread.pk}/archive/", {"archived": "1"})
    with tenant_context(org_a):
        assert Thread.objects.get().archived


def test_charlie_gets_404_on_org_a_threads(charlie_client, org_a, charlie):
    thread = _thread(org_a)
    assert charlie_client.get(f"/threads/{thread.pk}/").status_code == 404
    assert charlie_client.post(f"/threads/{thread.pk}/rename/", {"title": "x"}).status_code == 404
    assert charlie_client.post(f"/threads/{thread.pk}/archive/").status_code == 404
    assert charlie_client.post(f"/threads/{thread.pk}/messages/", {"content": "hi"}).status_code == 404
    assert charlie_client.get(f"/api/v1/threads/{thread.pk}/").status_code == 404
    assert charlie_client.get(f"/api/v1/threads/{thread.pk}/messages/").status_code == 404
    with tenant_context(org_a):
        assert Thread.objects.get(pk=thread.pk).title == "Trip planning"


def test_rename_with_htmx_returns_the_title_partial(alice_client, org_a):
    thread = _thread(org_a)
    response = alice_client.post(f"/threads/{thread.pk}/rename/", {"title": "Lisbon trip"}, headers={"HX-Request": "true"})
    assert b'id="thread-title"' in response.content and b"Lisbon trip" in response.content and b"<html" not in response.content
    assert alice_client.post(f"/threads/{thread.pk}/rename/", {"title": "   "}).status_code == 302
    with tenant_context(org_a):
        assert Thread.objects.get(pk=thread.pk).title == "Lisbon trip"


def test_model_output_is_never_raw_html(alice_client, org_a):
    thread = _thread(org_a)
    with tenant_context(org_a):
        Message.objects.create(org=org_a, thread=thread, seq=1, role="user", content="<img src=x onerror=alert(1)>")
        Message.objects.create(org=org_a, thread=thread, seq=2, role="assistant", content="**hi** <script>alert(2)</script> [x](javascript:alert(3))")
    page = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert "<script>alert(2)" not in page and "<img src=x" not in page and 'href="javascript:' not in page
    assert "<strong>hi</strong>" in page


def test_older_messages_load_on_demand(alice_client, org_a):
    thread = _thread(org_a)
    with tenant_context(org_a):
        for seq in range(1, 121):
            Message.objects.create(org=org_a, thread=thread, seq=seq, role="user", content=f"message number {seq}")
    page = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert "message number 120" in page and "message number 70<" not in page and "Load older messages" in page
    older = alice_client.get(f"/threads/{thread.pk}/?before=71", headers={"HX-Request": "true"}).content.decode()
    assert "message number 70<" in older and "message number 71<" not in older and "<html" not in older


@pytest.mark.django_db(transaction=True)  # the pipeline's steps run on pool threads: data must be committed
def test_no_js_send_waits_and_redirects(alice_client, org_a):
    thread = _thread(org_a)
    response = alice_client.post(f"/threads/{thread.pk}/messages/", {"content": "hello demo"})
    assert response.status_code == 302
    with tenant_context(org_a):
        assert Message.objects.filter(thread=thread, role="assistant", status="complete").exists()


def test_empty_message_from_the_page_is_an_error_and_writes_nothing(alice_client, org_a):
    thread = _thread(org_a)
    response = alice_client.post(f"/threads/{thread.pk}/messages/", {"content": "  "}, headers={"Accept": "text/event-stream"})
    assert response.status_code == 400 and "empty" in response.json()["error"]["message"]
    with tenant_context(org_a):
        assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_chat_page_streams_the_answer_over_sse(asgi_server, alice, org_a):
    from django.test import Client

    thread = _thread(org_a)
    client = Client()
    client.force_login(alice)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": "a" * 32}
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=20) as http:
        response = http.post(
            f"/threads/{thread.pk}/messages/",
            data={"content": "hello, who are you?", "csrfmiddlewaretoken": "a" * 32},
            headers={"Accept": "text/event-stream", "X-CSRFToken": "a" * 32, "Referer": asgi_server.url},
        )
    assert response.status_code == 200
    events = [line.split(":", 1)[1].strip() for line in response.text.splitlines() if line.startswith("event:")]
    assert events[0] == "start" and "delta" in events and events[-1] == "done"
    assert "X-RateLimit-Remaining-Requests".lower() in response.headers


def test_an_answer_left_streaming_long_ago_shows_as_interrupted(alice_client, org_a):
    from datetime import timedelta

    from django.utils import timezone

    thread = _thread(org_a)
    with tenant_context(org_a):
        Message.objects.create(org=org_a, thread=thread, seq=1, role="user", content="hi")
        Message.objects.create(org=org_a, thread=thread, seq=2, role="assistant", status="streaming", created_at=timezone.now() - timedelta(hours=1))
        Message.objects.create(org=org_a, thread=thread, seq=3, role="assistant", status="streaming")
    page = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert "Interrupted" in page
    with tenant_context(org_a):
        assert list(Message.objects.filter(thread=thread, role="assistant").order_by("seq").values_list("status", flat=True)) == ["failed", "streaming"]
