"""The threads pages: list, search, rename, archive, chat (with and without HX-Request), the SSE
send; the search box, a refused rename and an over-long paste also in Chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from tenants.context import tenant_context
from tests.browser.conftest import base_url, browser, open_tab, screenshot_dir  # noqa: F401 (the browser tests' fixtures)
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


@pytest.mark.django_db(transaction=True)  # the pipeline's steps run on pool threads: data must be committed
def test_line_breaks_the_browser_sends_as_crlf_count_once_and_are_kept_as_typed(alice_client, org_a):
    """A form sends a textarea's line breaks as CRLF: a message of many short lines was refused
    as over the limit (32,000) while the box showed fewer characters, and was saved with the CRs."""
    thread = _thread(org_a)
    sent = "\r\n".join(["a"] * 12_000)  # 23,999 characters as typed, 35,998 as sent
    response = alice_client.post(f"/threads/{thread.pk}/messages/", {"content": sent})
    assert response.status_code == 302
    with tenant_context(org_a):
        assert Message.objects.get(thread=thread, role="user").content == "\n".join(["a"] * 12_000)


def test_the_rename_box_does_not_cut_a_long_title(alice_client, org_a):
    page = alice_client.get(f"/threads/{_thread(org_a).pk}/").content.decode()
    assert "maxlength" not in re.search(r'<input id="rename"[^>]*>', page)[0]  # the server says "200 at most" instead


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


# ---------------------------------------------------------------- search, rename, long messages


class _Inputs(HTMLParser):
    """The page's inputs, each with the index of the form it sits in (None outside a form)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict] = []
        self._forms = 0
        self._form: int | None = None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "form":
            self._form, self._forms = self._forms, self._forms + 1
        elif tag == "input":
            self.inputs.append({**dict(attrs), "form": self._form})

    def handle_endtag(self, tag) -> None:
        if tag == "form":
            self._form = None


def _search_params(page: str) -> list[tuple[str, str]]:
    """What htmx sends for the search box (before anything is typed): the box itself, then what
    its hx-include selects, as htmx 2 resolves the selectors used here."""
    parser = _Inputs()
    parser.feed(page)
    box = next(i for i in parser.inputs if i.get("id") == "thread-search")
    include = box.get("hx-include", "")
    if include == "closest form":
        included = [i for i in parser.inputs if i["form"] == box["form"]]
    elif match := re.fullmatch(r"\[name=(\w+)\]", include):
        included = [i for i in parser.inputs if i.get("name") == match[1]]
    elif match := re.fullmatch(r"#([\w-]+)", include):
        included = [i for i in parser.inputs if i.get("id") == match[1]]
    else:
        raise AssertionError(f"hx-include {include!r}: teach _search_params this selector")
    sent = [box] + [i for i in included if i is not box]
    return [(i["name"], i.get("value", "")) for i in sent if i.get("name")]


def test_the_search_box_searches_the_list_being_viewed(alice_client, org_a):
    _thread(org_a, "Write a Python palindrome checker")
    _thread(org_a, "Budget review")
    _thread(org_a, "Python packaging notes", archived=True)
    _thread(org_a, "Old budget", archived=True)

    active = alice_client.get("/threads/").content.decode()
    assert _search_params(active) == [("q", "")]  # not the rows' Archive forms' archived=1
    rows = alice_client.get("/threads/", dict(_search_params(active)) | {"q": "palindrome"}, headers={"HX-Request": "true"}).content.decode()
    assert "Write a Python palindrome checker" in rows and "No thread matches" not in rows

    archived = alice_client.get("/threads/?archived=1").content.decode()
    assert _search_params(archived) == [("q", ""), ("archived", "1")]  # once, not the rows' archived=0 too
    rows = alice_client.get("/threads/", dict(_search_params(archived)) | {"q": "packaging"}, headers={"HX-Request": "true"}).content.decode()
    assert "Python packaging notes" in rows and "Old budget" not in rows


@pytest.mark.parametrize(
    "title, reason",
    [
        ("   ", "Title cannot be empty."),
        ("x" * 201, "Title is too long (200 characters at most)."),
        ("bad\x00name", "The title contains a null character"),
    ],
)
def test_a_refused_rename_with_htmx_says_why_in_the_open_form_at_once(alice_client, org_a, title, reason):
    thread = _thread(org_a, "Lisbon trip")
    response = alice_client.post(f"/threads/{thread.pk}/rename/", {"title": title}, headers={"HX-Request": "true"})
    part = response.content.decode()
    assert response.status_code == 200 and "<html" not in part
    assert reason in part and 'id="rename-error"' in part and 'aria-describedby="rename-error"' in part
    assert re.search(r"<details[^>]* open>", part)  # the form stays open, on what was typed
    assert re.search(r'<h1 id="thread-title"[^>]*>Lisbon trip</h1>', part)
    assert reason not in alice_client.get(f"/threads/{thread.pk}/").content.decode()  # not queued for the next page
    with tenant_context(org_a):
        assert Thread.objects.get(pk=thread.pk).title == "Lisbon trip"


def test_a_saved_rename_with_htmx_closes_the_form(alice_client, org_a):
    thread = _thread(org_a, "Lisbon trip")
    part = alice_client.post(f"/threads/{thread.pk}/rename/", {"title": "Porto trip"}, headers={"HX-Request": "true"}).content.decode()
    assert re.search(r'<h1 id="thread-title"[^>]*>Porto trip</h1>', part) and 'value="Porto trip"' in part
    assert "rename-error" not in part and not re.search(r"<details[^>]* open>", part)


def test_a_refused_rename_without_javascript_redirects_and_says_why(alice_client, org_a):
    thread = _thread(org_a, "Lisbon trip")
    response = alice_client.post(f"/threads/{thread.pk}/rename/", {"title": "   "}, follow=True)
    assert response.redirect_chain == [(f"/threads/{thread.pk}/", 302)]
    assert "Title cannot be empty." in response.content.decode()


def test_the_composer_does_not_cut_a_long_message_and_the_server_says_the_limit(alice_client, org_a, settings):
    settings.DAC_MAX_MESSAGE_CHARS = 32_000
    thread = _thread(org_a)
    page = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    composer = re.search(r'<textarea id="content"[^>]*>', page)[0]
    assert "maxlength" not in composer  # the browser would cut a 39,000-character paste without a word
    response = alice_client.post(f"/threads/{thread.pk}/messages/", {"content": "x" * 39_000}, headers={"Accept": "text/event-stream"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["message"] == "The message is 39,000 characters long; the limit is 32,000."
    with tenant_context(org_a):
        assert not Message.objects.exists()


# ---------------------------------------------------------------- the same in Chromium


def _signed_in(new_tab, url: str, user):
    """A browser tab signed in as `user` (the session of a test client, no login form)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    tab = new_tab()
    tab.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}])
    return tab


@pytest.mark.django_db(transaction=True)
def test_typing_in_the_search_box_searches_the_list_being_viewed(open_tab, base_url, alice, org_a):  # noqa: F811
    _thread(org_a, "Write a Python palindrome checker")
    _thread(org_a, "Budget review")
    _thread(org_a, "Python packaging notes", archived=True)
    _thread(org_a, "Old budget", archived=True)
    tab = _signed_in(open_tab, base_url, alice)
    page = tab.page
    for path, query, found, gone in [
        ("/threads/", "palindrome", "Write a Python palindrome checker", "Budget review"),
        ("/threads/?archived=1", "packaging", "Python packaging notes", "Old budget"),
    ]:
        tab.goto(path)
        page.get_by_label("Search threads by title").fill(query)
        rows = page.locator("#thread-rows")
        rows.get_by_text(gone).wait_for(state="detached")  # the rows were swapped for the results
        assert found in rows.inner_text() and "No thread matches" not in rows.inner_text(), (path, rows.inner_text())


@pytest.mark.django_db(transaction=True)
def test_a_refused_rename_says_why_at_once_and_a_saved_one_closes_the_form(open_tab, base_url, alice, org_a):  # noqa: F811
    thread = _thread(org_a, "Lisbon trip")
    tab = _signed_in(open_tab, base_url, alice)
    page = tab.page
    tab.goto(f"/threads/{thread.pk}/")
    page.locator("[data-rename] summary").click()
    page.get_by_label("New title").fill("   ")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#rename-error")
    error.wait_for()
    assert error.inner_text() == "Title cannot be empty." and page.locator("#thread-title").inner_text() == "Lisbon trip"
    assert page.get_by_label("New title").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "rename"  # back in the box, to fix it
    page.reload()
    assert "Title cannot be empty." not in page.inner_text("body")  # said once, not again on the next page

    page.locator("[data-rename] summary").click()
    page.get_by_label("New title").fill("Porto trip")
    page.get_by_label("New title").press("Enter")
    page.wait_for_function("() => document.getElementById('thread-title').textContent === 'Porto trip'")
    assert page.locator("#rename-error").count() == 0 and page.locator("[data-rename]").get_attribute("open") is None
    assert page.title() == "Porto trip · DAC"
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"


@pytest.mark.django_db(transaction=True)
def test_a_long_paste_is_refused_with_the_limit_and_stays_in_the_box(open_tab, base_url, alice, org_a, settings):  # noqa: F811
    settings.DAC_MAX_MESSAGE_CHARS = 32_000
    thread = _thread(org_a)
    tab = _signed_in(open_tab, base_url, alice)
    tab.allow_console_error(r"status of 400")
    page = tab.page
    tab.goto(f"/threads/{thread.pk}/")
    textarea = page.get_by_label("Message", exact=True)
    pasted = "word " * 7_800
    textarea.focus()
    page.keyboard.insert_text(pasted)  # as a paste: a maxlength would cut it to 32,000
    textarea.press("Enter")
    alert = page.locator('#chat-alert [data-alert="validation_error"]')
    alert.wait_for()
    assert "The message is 39,000 characters long; the limit is 32,000." in alert.inner_text()
    assert textarea.input_value() == pasted and page.evaluate("document.activeElement.id") == "content"
    assert page.locator(".message").count() == 0

    # Far longer than Django reads at all: no length to quote, but still what to do, and the text kept.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    textarea.fill("")
    page.keyboard.insert_text("x" * 120_000)
    textarea.press("Enter")
    page.locator('#chat-alert [data-alert="validation_error"]', has_text="If it is very long, shorten it").wait_for()
    assert len(textarea.input_value()) == 120_000 and page.locator(".message").count() == 0
