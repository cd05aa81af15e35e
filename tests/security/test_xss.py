"""XSS: script-shaped text stored through every way in (message content, model output, thread
titles, org names, key labels, token names) or reflected from query strings, then rendered on
every page that shows it, full page and htmx partial: no `<script>` that is not ours, no event
handler attribute, no `javascript:`/`data:text/html` URL in any page. The pages are parsed as
HTML (not grepped), so an escaped payload shown as text is fine and a live one is caught."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils.html import escape

from audit.services import Actor
from providers.services.keys import provider_key_add
from tenants.context import tenant_context
from tenants.services import api_token_create
from tests.fakes import Behaviour, FakeProvider
from threads.models import Message, Thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

PAYLOADS = [
    '<script>alert("xss1")</script>',
    '<img src=x onerror=alert("xss2")>',
    '"><svg onload=alert("xss3")>',
    "'><a href=javascript:alert('xss4')>x</a>",
    '[click](javascript:alert("xss5"))',
    '![img](javascript:alert("xss6"))',
    '[t](JaVaScRiPt:alert("xss7"))',
    '<a href="jav&#x09;ascript:alert(\'xss8\')">x</a>',
    '</textarea></title><script>alert("xss9")</script>',
    '```"><script>alert("xss10")</script>\ncode\n```',
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgneHNzMTEnKTwvc2NyaXB0Pg==)",
    "<iframe src=\"javascript:alert('xss12')\"></iframe>",
    "[y](vbscript:msgbox(\"xss13\"))",
    '<a href="#" style="x" onmouseover="alert(\'xss14\')">hover</a>',
]
TEXT = "\n\n".join(PAYLOADS)
SHORT = '"><img src=x onerror=alert("xss15")><script>alert("xss16")</script>'  # fits titles, names, labels
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background", "srcdoc"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:text/html")


class Inspector(HTMLParser):
    """Finds live script in a page: what a browser would run, not text that merely looks like it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…> event handler")
            if name in URL_ATTRS and value:
                normalised = re.sub(r"[\s\x00-\x20]+", "", value).lower()
                if normalised.startswith(BAD_SCHEMES):
                    self.problems.append(f"<{tag} {name}={value[:40]!r}>")
        if tag in ("iframe", "object", "embed", "frame"):
            self.problems.append(f"<{tag}> element")
        if tag == "script":
            src = dict(attrs).get("src") or ""
            kind = (dict(attrs).get("type") or "").lower()
            if not src.startswith("/static/") and kind != "application/json":
                self.problems.append(f"<script src={src!r}> not one of ours")
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:60]!r}")


def live_script(html: str) -> list[str]:
    inspector = Inspector()
    inspector.feed(html)
    inspector.close()
    return inspector.problems


def test_the_inspector_catches_what_it_should():
    """A checker that cannot fail is a bug: fed the payloads raw, it finds every one of them."""
    found = live_script("".join(p for p in PAYLOADS if not p.startswith(("[", "!", "```"))) + f'<a href="{SHORT}">')
    assert len(found) >= 9
    assert live_script('<p>&lt;script&gt;alert("x")&lt;/script&gt; <a href="/threads/">ok</a></p><script src="/static/js/ui.js"></script>') == []


@pytest.fixture
def stored(org_a, alice, settings):
    """Every kind of stored text, each carrying script, put in the way users put it in."""
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    fake = FakeProvider("openai", behaviour=Behaviour(text=TEXT)).start()
    with tenant_context(org_a):
        provider_key_add(org_id=org_a.id, provider="openai", api_key="sk-xss-0123456789abcdef", label=SHORT[:100], base_url=fake.base_url, actor=Actor.system())
        api_token_create(org_id=org_a.id, name=SHORT[:100], created_by=alice, actor=Actor.system())
    browser = Client()
    browser.force_login(alice)
    assert browser.post("/orgs/new/", {"name": SHORT[:120]}).status_code == 302  # alice's second org, in the org switcher
    browser.post("/orgs/switch/", {"org_id": org_a.pk})
    thread = browser.post("/api/v1/threads/", {"title": "t"}, content_type="application/json").json()["id"]
    browser.post(f"/threads/{thread}/rename/", {"title": SHORT})
    sent = browser.post(f"/api/v1/threads/{thread}/messages/", {"content": TEXT}, content_type="application/json")
    assert sent.status_code == 201, sent.content
    yield {"browser": browser, "thread": thread, "org": org_a}
    fake.close()


def test_stored_and_reflected_script_never_runs_on_any_page(stored):
    browser, thread = stored["browser"], stored["thread"]
    with tenant_context(stored["org"]):
        assert Thread.objects.get(pk=thread).title == SHORT
        user, answer = Message.objects.filter(thread_id=thread).order_by("seq")
        assert user.content == TEXT and answer.content == TEXT  # stored as written, escaped when shown
    pages = [
        "/threads/", f"/threads/?q={SHORT}", f"/threads/{thread}/", f"/threads/{thread}/messages/{user.pk}/",
        f"/threads/{thread}/messages/{answer.pk}/", "/dashboard/", "/members/", "/tokens/", "/settings/providers/",
        "/settings/routing/", f"/settings/routing/?text={SHORT}", "/audit/", f"/audit/?q={SHORT}", "/usage/",
        f"/memory/?q={SHORT}", "/orgs/new/",
    ]
    failures = []
    for path in pages:
        for htmx in (False, True):
            response = browser.get(path, headers={"HX-Request": "true"} if htmx else {})
            assert response.status_code == 200, (path, response.status_code)
            html = response.content.decode()
            failures += [f"{path}{' (htmx)' if htmx else ''}: {p}" for p in live_script(html)]
    # Each stored payload did reach a page, shown as text: the pages above really rendered them.
    shown = escape(SHORT)
    thread_page = browser.get(f"/threads/{thread}/").content.decode()
    assert "&lt;script&gt;alert(&quot;xss1&quot;)&lt;/script&gt;" in thread_page and shown in thread_page  # output, title
    assert shown in browser.get("/dashboard/").content.decode()  # the other org's name, in the switcher
    assert shown in browser.get("/settings/providers/").content.decode()  # the key's label
    assert shown in browser.get("/tokens/").content.decode()  # the token's name
    assert not failures, "\n".join(failures)


def test_pages_for_visitors_reflect_nothing_live():
    visitor = Client()
    failures = []
    for path in (f"/login/?next={SHORT}", f"/signup/?email={SHORT}", f"/?q={SHORT}"):
        response = visitor.get(path)
        failures += [f"{path}: {p}" for p in live_script(response.content.decode())]
    response = visitor.post("/signup/", {"email": SHORT, "password": "x", "org_name": SHORT})
    failures += [f"POST /signup/: {p}" for p in live_script(response.content.decode())]
    assert not failures, "\n".join(failures)


def test_api_answers_with_stored_script_are_json_that_browsers_will_not_sniff(stored):
    response = stored["browser"].get(f"/api/v1/threads/{stored['thread']}/messages/")
    assert SHORT.encode() not in response.content or response["Content-Type"].startswith("application/json")
    assert response["Content-Type"].startswith("application/json") and response["X-Content-Type-Options"] == "nosniff"


def test_login_and_org_switch_never_redirect_off_site(alice):
    from tests.factories import PASSWORD

    visitor = Client()
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)", "/\\evil.example"):
        response = visitor.post(f"/login/?next={target}", {"username": "alice@example.com", "password": PASSWORD, "next": target})
        assert response.status_code == 302 and not response["Location"].startswith(("https://evil", "//", "javascript:", "/\\")), target
        visitor.post("/logout/")


# Found here (issue 11): org_switch redirected to any `next`. Fixed with url_has_allowed_host_and_scheme.
def test_the_org_switcher_never_redirects_off_site(alice_client, org_a):
    for target in ("https://evil.example/", "//evil.example/"):
        response = alice_client.post("/orgs/switch/", {"org_id": org_a.pk, "next": target})
        assert response.status_code == 302 and "evil.example" not in response["Location"], response["Location"]
