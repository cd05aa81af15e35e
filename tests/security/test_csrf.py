"""CSRF: every route that a browser session can POST to refuses a POST without the CSRF token
(routes from Django's resolver, so a new form is covered the day it is added); the gateway,
the one route exempt from CSRF, takes no session at all; and a token from another origin is
refused too."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.services import Actor
from providers.services.keys import provider_key_add
from tenants.context import tenant_context
from tenants.models import ApiToken, Membership
from tenants.services import api_token_create
from tests.routes import url_routes
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)")
# Bearer-token only: a browser session is not accepted there (chat/completions is CSRF-exempt
# and answers 401; models is GET-only, and a POST meets the CSRF check first).
TOKEN_ONLY = {"v1/chat/completions": {401}, "v1/models": {403}}
# Rendered by DRF's HTML renderer, whose 403 page does not name the reason.
TERSE_403 = ("api/docs/", "api/schema/")


def _url(route: str, ids: dict) -> str:
    path = _PARAM.sub(lambda m: str(ids.get(m.group(2) or m.group(3), 1)), route)
    return "/" + path.replace("^", "").replace("/?$", "/").replace("$", "").replace(".*", "")


@pytest.fixture
def ids(org_a, alice, bob, settings):
    """alice's own objects: the requests would succeed but for the missing token."""
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a, title="mine")
        message = Message.objects.create(org=org_a, thread=thread, seq=1, role="user", content="hello")
        Thread.objects.filter(pk=thread.pk).update(next_seq=2)
        token = api_token_create(org_id=org_a.id, name="t", created_by=alice, actor=Actor.system()).token
        key = provider_key_add(org_id=org_a.id, provider="openai", api_key="sk-csrf-0123456789abcdef", base_url="http://127.0.0.1:9/v1", actor=Actor.system())
    return {
        "thread_id": thread.pk, "message_id": message.pk, "token_id": token.pk, "key_id": key.pk, "provider": "openai",
        "membership_id": _membership(org_a, bob),
        "object_id": org_a.pk, "id": alice.pk, "content_type_id": 1, "app_label": "threads", "url": "threads/thread/",
    }


def _membership(org, user) -> int:
    with tenant_context(org):
        return Membership.objects.get(user=user).pk


def test_every_session_post_without_the_csrf_token_is_refused(ids, alice, org_a):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    data = {"title": "csrf", "content": "csrf", "role": "admin", "name": "csrf", "org_id": org_a.pk, "api_key": "sk-csrf-0123456789abcdef",
            "username": "alice@example.com", "password": "x", "email": "new@example.com", "org_name": "Evil"}
    failures, tried = [], 0
    for route, _ in url_routes():
        url = _url(route, ids)
        for method in ("post", "put", "patch", "delete"):
            if method != "post" and not route.startswith("api/"):
                continue  # pages only take POST
            response = getattr(browser, method)(url, data, content_type="application/json") if route.startswith("api/") else browser.post(url, data)
            tried += 1
            if route in TOKEN_ONLY:
                expected = TOKEN_ONLY[route]
            elif route.startswith("admin/"):
                expected = {403, 302}  # CSRF first; the few admin views that are not forms redirect to its login
            else:
                expected = {403, 405}  # 405: the route takes no such method (GET-only pages)
            if response.status_code not in expected:
                failures.append(f"{method.upper()} {url} -> {response.status_code}")
            elif response.status_code == 403 and not route.startswith(("admin/", *TERSE_403)) and b"CSRF" not in response.content:
                failures.append(f"{method.upper()} {url} -> 403, but not for CSRF: {response.content[:120]!r}")
    assert tried > 80
    assert not failures, "\n".join(failures)
    with tenant_context(org_a):
        assert Thread.objects.get(pk=ids["thread_id"]).title == "mine"
        assert ApiToken.objects.get(pk=ids["token_id"]).revoked_at is None
        assert Message.objects.count() == 1


def test_with_the_token_the_same_form_works(ids, alice, org_a):
    """The refusals above are about the token: with it, the same requests go through."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    page = browser.get(f"/threads/{ids['thread_id']}/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    response = browser.post(f"/threads/{ids['thread_id']}/rename/", {"title": "renamed", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    api = browser.patch(f"/api/v1/threads/{ids['thread_id']}/", {"title": "via api"}, content_type="application/json", headers={"X-CSRFToken": token})
    assert api.status_code == 200


def test_a_valid_token_posted_from_another_origin_is_refused(ids, alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    page = browser.get(f"/threads/{ids['thread_id']}/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    response = browser.post(f"/threads/{ids['thread_id']}/rename/", {"title": "evil", "csrfmiddlewaretoken": token},
                            headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


def test_the_gateway_ignores_a_browser_session(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post("/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}, content_type="application/json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
