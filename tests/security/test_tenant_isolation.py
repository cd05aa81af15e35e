"""Cross-tenant access through every route: another org's ids, X-Org-Id games, another org's
API tokens. The routes come from Django's resolver, so a route added later is attacked too
(and a route whose id this file cannot fill fails the test until it is added to IDS).

Attackers, all outside org A: charlie (member of B, browser session), erin (owner of B: admin
views get past their role check to the lookup), and an API token of B. Against each route that
takes an id, with org A's real ids, with every method: never a success, never A's data in the
answer, and nothing of A's changed afterwards. Pages and lists without ids never show A's data.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings

from audit.services import Actor
from providers.models import ProviderKey
from providers.services.keys import provider_key_add
from tenants.context import tenant_context
from tenants.models import ApiToken, Membership
from tenants.services import api_token_create
from tests.factories import MembershipFactory, api_token_for, member
from tests.routes import url_routes
from threads.models import ForgottenMemory, Message, Thread

# transaction=True: the gateway authenticates on its own pool threads, outside a test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")]

MARK = "zqx-org-a-secret"  # in every piece of org A's data an attacker could see
NEVER_OK = {200, 201, 202, 204}
NOT_IDS = {"provider", "model_id", "answer"}  # URL parameters that name no object of an org


_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def _params(route: str) -> list[str]:
    return [m.group(2) or m.group(3) for m in _PARAM.finditer(route)]


def _url(route: str, values: dict) -> str:
    path = _PARAM.sub(lambda m: str(values[m.group(2) or m.group(3)]), route)
    return "/" + path.replace("^", "").replace("/?$", "/").replace("$", "")


@pytest.fixture
def a(org_a, alice, bob, settings):
    """Org A's objects, each carrying MARK."""
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True  # the key points at a closed local port: no network
    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a, title=f"{MARK} thread", created_by=alice)
        question = Message.objects.create(org=org_a, thread=thread, seq=1, role="user", content=f"{MARK} question")
        answer = Message.objects.create(org=org_a, thread=thread, seq=2, role="assistant", content=f"{MARK} answer", status="streaming")
        Thread.objects.filter(pk=thread.pk).update(next_seq=3)
        token = api_token_create(org_id=org_a.id, name=f"{MARK} token", created_by=alice, actor=Actor.system()).token
        key = provider_key_add(org_id=org_a.id, provider="openai", api_key="sk-orga-0123456789abcdef", label=f"{MARK} key",
                               base_url="http://127.0.0.1:9/v1", actor=Actor.system())
        membership = Membership.objects.get(user=bob)
    return {"org": org_a, "thread": thread, "question": question, "answer": answer, "token": token, "key": key, "membership": membership}


@pytest.fixture
def erin(org_b):
    return member(org_b, "erin@example.com", "owner")


@pytest.fixture
def b_token(org_b):
    return api_token_for(org_b, "b")


def _ids(a, org_b) -> dict:
    return {
        "thread_id": a["thread"].pk,
        "message_id": a["answer"].pk,
        "membership_id": a["membership"].pk,
        "token_id": a["token"].pk,
        "key_id": a["key"].pk,
        "provider": "openai",
        "answer": "accept",  # an invitation's
        "object_id": a["org"].pk,
        "content_type_id": 1,
        "id": a["org"].pk,  # admin: a user id
        "app_label": "threads",  # admin: an app's index
        "url": "threads/thread/",  # admin: its catch-all
    }


def _attackers(charlie, erin, b_token) -> dict[str, Client]:
    sessions = {}
    for name, user in (("charlie (member of B)", charlie), ("erin (owner of B)", erin)):
        client = Client()
        client.force_login(user)
        sessions[name] = client
    sessions["API token of B"] = Client(headers={"Authorization": f"Bearer {b_token}"})
    return sessions


def _a_is_untouched(a) -> list[str]:
    problems = []
    with tenant_context(a["org"]):
        thread = Thread.objects.get(pk=a["thread"].pk)
        if thread.title != f"{MARK} thread" or thread.archived:
            problems.append(f"thread changed: {thread.title!r} archived={thread.archived}")
        if Message.objects.filter(thread=thread).count() != 2:
            problems.append("messages added or removed")
        if Message.objects.get(pk=a["answer"].pk).status != "streaming":
            problems.append("the running answer was stopped")
        if ApiToken.objects.get(pk=a["token"].pk).revoked_at is not None:
            problems.append("token revoked")
        key = ProviderKey.objects.filter(pk=a["key"].pk).first()
        if key is None or not key.is_active or key.last_tested_at is not None:
            problems.append("provider key deleted, deactivated or tested")
        membership = Membership.objects.filter(pk=a["membership"].pk).first()
        if membership is None or membership.role != "member":
            problems.append("bob's membership changed")
        if ForgottenMemory.objects.exists():
            problems.append("a message of A was forgotten")
    return problems


def test_every_route_with_an_id_refuses_other_orgs_and_changes_nothing(a, org_b, charlie, erin, b_token):
    ids = _ids(a, org_b)
    body = {"title": "pwned", "archived": True, "role": "owner", "content": "pwned", "allowed": "on", "org_id": a["org"].pk}
    failures, tried = [], 0
    for route, _view in url_routes():
        params = _params(route)
        if not set(params) - NOT_IDS:
            continue  # nothing of org A's in the URL (e.g. settings/providers/<provider>/keys/)
        unknown = [p for p in params if p not in ids]
        if unknown:
            failures.append(f"{route}: this test does not know the id {unknown}; add it to _ids()")
            continue
        url = _url(route, ids)
        for attacker, client in _attackers(charlie, erin, b_token).items():
            for method in ("get", "post", "patch", "delete"):
                if method == "get":
                    response = client.get(url)
                elif route.startswith("api/") or route.startswith("v1/"):
                    response = getattr(client, method)(url, body, content_type="application/json")
                else:
                    response = getattr(client, method)(url, body)
                tried += 1
                content = b"".join(response) if response.streaming else response.content
                if route.startswith("admin/"):  # operators only: everyone else is sent to its login
                    ok = response.status_code == 302 and "/admin/login/" in response["Location"]
                elif 300 <= response.status_code < 400:  # only "log in first" (a token is no session)
                    ok = response["Location"].startswith("/login/") and attacker.startswith("API token")
                else:
                    ok = response.status_code not in NEVER_OK
                if not ok or MARK.encode() in content:
                    failures.append(f"{attacker} {method.upper()} {url} -> {response.status_code}")
    assert tried > 100
    assert not failures, "\n".join(failures)
    assert _a_is_untouched(a) == []


def test_pages_and_lists_never_show_another_orgs_data(a, org_b, charlie, erin, b_token):
    failures = []
    for route, _view in url_routes():
        if _params(route) or route.startswith(("admin/", "logout/", "demo", "api/docs/")):
            continue
        url = _url(route, {})
        for attacker, client in _attackers(charlie, erin, b_token).items():
            response = client.get(url, {"q": "secret question answer thread"})  # words of A's data, not MARK
            content = b"".join(response) if response.streaming else response.content
            if MARK.encode() in content:
                failures.append(f"{attacker} GET {url} shows org A's data")
    assert not failures, "\n".join(failures)


def test_x_org_id_selects_among_your_orgs_and_never_grants_another(a, org_a, org_b, charlie, alice, b_token):
    thread_url = f"/api/v1/threads/{a['thread'].pk}/"
    charlie_client = Client()
    charlie_client.force_login(charlie)
    # Naming org A does not let charlie in, on pages or the API: the same 404 as a made-up org.
    for url in ("/threads/", thread_url, f"/threads/{a['thread'].pk}/"):
        for org_id in (org_a.pk, 999_999):
            response = charlie_client.get(url, headers={"X-Org-Id": str(org_id)})
            assert response.status_code == 404 and MARK.encode() not in response.content, (url, org_id)
    assert charlie_client.get("/threads/", headers={"X-Org-Id": "1 OR 1=1"}).status_code == 400
    # B's token cannot be pointed at A.
    b_api = Client(headers={"Authorization": f"Bearer {b_token}", "X-Org-Id": str(org_a.pk)})
    assert b_api.get(thread_url).status_code == 404
    assert b_api.get("/api/v1/threads/").status_code == 404
    garbage = Client(headers={"Authorization": f"Bearer {b_token}", "X-Org-Id": "zzz"}).get("/api/v1/threads/")
    assert garbage.status_code == 400 and "X-Org-Id must be the numeric id" in garbage.json()["error"]["message"]
    # A member of both orgs acting on B does not reach A's thread, and naming A works.
    MembershipFactory(org=org_b, user=alice, role="member")
    alice_client = Client()
    alice_client.force_login(alice)
    assert alice_client.get(thread_url, headers={"X-Org-Id": str(org_b.pk)}).status_code == 404
    assert alice_client.get(thread_url, headers={"X-Org-Id": str(org_a.pk)}).status_code == 200
    # The org switcher only switches among your own orgs.
    assert charlie_client.post("/orgs/switch/", {"org_id": org_a.pk}).status_code == 404
    assert charlie_client.get(f"/threads/{a['thread'].pk}/").status_code == 404


def test_the_gateway_takes_x_org_id_as_the_rest_api_does(a, org_a, org_b, b_token):
    """It ignored the header: a call naming another org (or garbage) was answered in the token's."""
    body = {"model": "demo/demo-1", "messages": [{"role": "user", "content": "hi"}]}

    def call(org_header):
        return Client(headers={"Authorization": f"Bearer {b_token}", "X-Org-Id": org_header}).post(
            "/v1/chat/completions", body, content_type="application/json")

    other, garbage = call(str(org_a.pk)), call("zzz")
    assert other.status_code == 404 and other.json()["error"]["param"] == "X-Org-Id"
    assert garbage.status_code == 400 and "numeric id" in garbage.json()["error"]["message"]
    assert call(str(org_b.pk)).status_code == 200
    assert _a_is_untouched(a) == []


def test_the_gateway_refuses_another_orgs_thread_and_never_writes_to_it(a, b_token):
    client = Client(headers={"Authorization": f"Bearer {b_token}", "X-DAC-Thread-Id": str(a["thread"].pk)})
    response = client.post("/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}, content_type="application/json")
    assert response.status_code == 404 and set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert MARK.encode() not in response.content
    assert _a_is_untouched(a) == []


def test_a_token_of_another_org_or_a_revoked_or_forged_one_gets_nothing(a, org_a, b_token):
    plaintext = api_token_for(org_a, "soon revoked")
    good = Client(headers={"Authorization": f"Bearer {plaintext}"})
    assert good.get(f"/api/v1/threads/{a['thread'].pk}/").status_code == 200
    from tenants.services import api_token_revoke

    with tenant_context(org_a):
        api_token_revoke(token=ApiToken.objects.get(name="soon revoked"), actor=Actor.system())
    prefix = plaintext.split("_")[1]
    for token in (plaintext, f"dac_{prefix}_{'x' * 40}", b_token.rsplit("_", 1)[0] + "_" + plaintext.rsplit("_", 1)[1], "dac_x_y", "garbage"):
        client = Client(headers={"Authorization": f"Bearer {token}"})
        for url in (f"/api/v1/threads/{a['thread'].pk}/", "/v1/models"):
            response = client.get(url)
            assert response.status_code in (401, 404), (token, url, response.status_code)
            assert MARK.encode() not in response.content


@override_settings(DAC_METRICS_TOKEN="")
def test_metrics_are_for_operators_only(charlie):
    client = Client(REMOTE_ADDR="203.0.113.9")
    client.force_login(charlie)
    assert client.get("/metrics").status_code in (403, 404)


def test_a_token_revoked_by_another_worker_stops_working_within_the_cache_window(org_a, settings):
    """Workers remember a verified token for DAC_TOKEN_CACHE_SECONDS; the worker that revokes
    forgets it at once, the others within that window (revoked here straight in the database,
    as another worker's revocation looks from this one)."""
    import time

    settings.DAC_TOKEN_CACHE_SECONDS = 0.5
    with tenant_context(org_a):
        created = api_token_create(org_id=org_a.id, name="short-lived", created_by=None, actor=Actor.system())
    client = Client(headers={"Authorization": f"Bearer {created.plaintext}"})
    assert client.get("/v1/models").status_code == 200
    with tenant_context(org_a):
        from django.utils import timezone

        ApiToken.objects.filter(pk=created.token.pk).update(revoked_at=timezone.now())
    time.sleep(0.6)
    assert client.get("/v1/models").status_code == 401
    assert client.get("/api/v1/threads/").status_code == 401
