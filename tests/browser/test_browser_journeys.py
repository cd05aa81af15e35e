"""End to end in Chromium: sign up, add a key, chat with streaming, dark mode, the demo on a
phone, failures and their next steps, Stop, and long threads. Screenshots of every main page
in light and dark land in var/screenshots/<timestamp>/ (see conftest.py)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import NoReverseMatch, reverse

from audit.services import Actor
from tests.fakes import Behaviour, FakeProvider

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def fake(settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True  # the fake listens on 127.0.0.1
    with FakeProvider("openai_compatible") as server:
        yield server


def _url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _sign_up(tab, email: str, org: str) -> None:
    tab.goto("/signup/")
    tab.page.get_by_label("Work email").fill(email)
    tab.page.get_by_label("Password").fill(PASSWORD)
    tab.page.get_by_label("Organization name").fill(org)
    tab.page.get_by_role("button", name="Create account").click()
    tab.page.wait_for_url("**/dashboard/")


def _org_of(email: str):
    from tenants.models import User
    from tenants.selectors import user_orgs

    user = User.objects.get(email=email)
    return user, user_orgs(user_id=user.pk)[0].org_id


def _assistant(page, index: int = -1):
    return page.locator('.message[data-role="assistant"]').nth(index)


def _wait_answer_done(page, count: int) -> None:
    page.wait_for_function(
        "n => { const a = document.querySelectorAll('.message[data-role=assistant]');"
        " return a.length >= n && a[n - 1].dataset.status !== 'streaming'; }",
        arg=count,
    )


def test_sign_up_add_a_key_and_chat_with_streaming_in_light_and_dark(open_tab, fake):
    fake.behaviour = Behaviour(text="Queues wait in line, patient bytes in a row, the worker wakes up.", chunks=14, chunk_gap=0.06)
    tab = open_tab()
    page = tab.page

    tab.goto("/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("One workspace and gateway")
    assert page.locator("[data-menu-toggle]").is_hidden()  # desktop: the links are in the bar
    stops = tab.tab_through()
    assert stops[0] == 'a "Skip to content"' and len(stops) >= 20
    assert any("Try the demo" in stop for stop in stops) and any("Dark mode" in stop for stop in stops)
    tab.capture("landing")

    # The toggle beats the system setting and is remembered across pages.
    toggle = page.locator("header [data-theme-toggle]")
    toggle.click()
    assert page.evaluate("document.documentElement.classList.contains('dark')")
    assert toggle.get_attribute("aria-pressed") == "true"
    page.reload()
    assert page.evaluate("document.documentElement.classList.contains('dark')")
    assert "dac_theme=dark" in page.evaluate("document.cookie")
    page.locator("header [data-theme-toggle]").click()  # back to light = the system's: forget the choice
    assert page.evaluate("localStorage.getItem('dac-theme')") is None
    assert "dac_theme=dark" not in page.evaluate("document.cookie")

    tab.goto("/signup/")
    tab.capture("signup")
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(tab, email, "Analytical Engines")
    assert "Analytical Engines" in page.inner_text("header")
    tab.capture("dashboard")

    # Add an OpenAI-compatible key that points at the fake provider.
    tab.goto("/settings/providers/")
    card = page.locator("#provider-openai_compatible")
    card.get_by_text("Add a key").click()
    card.get_by_label("API key").fill("sk-browser-test-0123456789")
    card.get_by_label(re.compile("Base URL")).fill(fake.base_url)
    card.get_by_role("button", name="Save key").click()
    page.locator("#provider-openai_compatible").get_by_text("configured", exact=True).wait_for()
    tab.capture("providers")

    tab.goto("/threads/")
    tab.capture("threads-empty")
    page.get_by_role("button", name="New thread").click()
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    textarea = page.get_by_label("Message", exact=True)
    assert page.evaluate("document.activeElement.id") == "content"  # ready to type on desktop
    textarea.fill("Write a haiku about queues")
    textarea.press("Enter")

    # While it streams: the typing indicator or the text so far, and a Stop button.
    page.locator("#stop").wait_for(state="visible")
    assert page.locator("#send").is_hidden()
    page.locator(".message[data-status=streaming] .typing, .message[data-status=streaming] .streaming-cursor").first.wait_for()
    _wait_answer_done(page, 1)
    answer = _assistant(page)
    assert answer.get_attribute("data-status") == "complete"
    assert "patient bytes in a row" in answer.inner_text()
    assert "openai_compatible" in answer.inner_text()
    assert page.locator("#send").is_visible() and page.locator("#stop").is_hidden()
    assert textarea.input_value() == ""
    assert page.locator("#thread-title").inner_text() == "Write a haiku about queues"  # named by its first message
    assert fake.last_request.headers.get("authorization") == "Bearer sk-browser-test-0123456789"
    page.locator(".message[data-role=user]").get_by_text("Write a haiku about queues").wait_for()
    stops = tab.tab_through()
    for control in ('"Copy answer"', '"Why this provider?"', 'textarea "content"', 'select "Auto (by rules)', 'button "Send"'):
        assert any(control in stop for stop in stops), (control, stops)
    tab.capture("chat", full_page=False)

    tab.goto("/threads/")
    tab.capture("threads")
    for name, path in [
        ("routing", "/settings/routing/"),
        ("members", "/members/"),
        ("api-tokens", "/tokens/"),
        ("usage", _url_or_none("metrics:usage")),
        ("audit", _url_or_none("audit:log") or _url_or_none("audit:list")),
    ]:
        if path:
            tab.goto(path)
            tab.capture(name)

    # Log out and back in.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    tab.capture("login")
    tab.log_in(email, PASSWORD)


def test_the_demo_on_a_phone(open_tab):
    tab = open_tab(phone=True)
    page = tab.page

    tab.goto("/")
    tab.no_horizontal_scroll()
    menu = page.locator("[data-menu-toggle]")
    panel = page.locator("#nav-panel")
    assert menu.is_visible() and panel.is_hidden()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true" and panel.is_visible()
    assert panel.get_by_role("link", name="Pricing").is_visible()
    page.keyboard.press("Escape")
    assert panel.is_hidden() and page.evaluate("document.activeElement.hasAttribute('data-menu-toggle')")
    tab.capture("landing")

    page.get_by_role("link", name="Try the demo").first.click()
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    banner = page.locator("[data-demo-banner]")
    assert "demo sandbox" in banner.inner_text() and banner.get_by_role("link", name=re.compile("Sign up")).is_visible()
    assert re.search(r"(today|tomorrow) at \d\d:\d\d", banner.inner_text())  # expiry in the visitor's time
    assert page.get_by_text("Ask anything").is_visible()
    tab.no_horizontal_scroll()
    tab.capture("demo")

    # A suggestion sends at once; the demo provider answers with code for a code question.
    page.locator("[data-suggest]").filter(has_text="palindrome").click()
    _wait_answer_done(page, 1)
    answer = _assistant(page)
    assert answer.get_attribute("data-status") == "complete" and "demo" in answer.inner_text()
    frame = answer.locator(".code-frame")
    frame.first.wait_for()
    frame.first.get_by_role("button", name=re.compile("Copy")).click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied and copied == frame.first.locator("pre").inner_text().rstrip("\n")
    answer.get_by_role("button", name="Copy answer").click()
    assert page.evaluate("navigator.clipboard.readText()") == answer.locator("[data-answer]").get_attribute("data-raw")
    tab.no_horizontal_scroll()
    tab.capture("demo-chat", full_page=False)

    # The same session comes back to the same sandbox; another browser gets its own.
    url = page.url
    tab.goto("/demo")
    assert page.url == url
    desktop = open_tab()
    desktop.goto("/demo")
    assert re.search(r"/threads/\d+/$", desktop.page.url) and desktop.page.url != url
    desktop.capture("demo", full_page=False)


def test_failures_say_what_to_do_and_retry_stop_and_long_threads_work(open_tab, fake, settings):
    from providers.services.keys import provider_key_add
    from providers.services.limits import quota_limit_set
    from tenants.context import tenant_context
    from tenants.services import user_signup
    from threads.models import Message, Thread

    settings.DAC_PROVIDER_RETRIES = 0
    email = f"grace-{uuid.uuid4().hex[:8]}@example.com"
    user, _ = user_signup(email=email, password=PASSWORD, org_name="Compilers")
    _, org_id = _org_of(email)
    with tenant_context(org_id):
        provider_key_add(
            org_id=org_id, provider="openai_compatible", api_key="sk-fake-key-0123456789", base_url=fake.base_url, actor=Actor.user(user)
        )
        thread = Thread.objects.create(org_id=org_id, title="Long thread", next_seq=121)
        Message.objects.bulk_create(
            Message(
                org_id=org_id,
                thread=thread,
                seq=seq,
                role="user" if seq % 2 else "assistant",
                status="complete",
                content=f"message number {seq}",
            )
            for seq in range(1, 121)
        )

    tab = open_tab()
    page = tab.page
    tab.log_in(email, PASSWORD)
    tab.goto(f"/threads/{thread.pk}/")
    box = page.locator("#messages")
    distance = "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    assert box.evaluate(distance) < 5  # opens at the newest message

    # Older messages load on demand without moving what the reader is looking at.
    box.evaluate("el => { el.scrollTop = 0; }")
    anchor = page.locator("#message-" + str(_message_id(org_id, thread, 71)))
    before = anchor.evaluate("el => el.getBoundingClientRect().top")
    page.get_by_role("button", name="Load older messages").click()
    page.get_by_text("message number 21", exact=True).wait_for(state="attached")
    assert abs(anchor.evaluate("el => el.getBoundingClientRect().top") - before) < 3
    page.wait_for_function("document.activeElement && document.activeElement.closest('#load-older') !== null")

    # A provider failure: the answer says so, with Retry; Retry re-sends the message.
    box.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    fake.behaviour = Behaviour(error="unavailable")
    textarea = page.get_by_label("Message", exact=True)
    textarea.fill("Explain back-pressure")
    textarea.press("Enter")
    failed = page.locator('.message[data-status="failed"]')
    failed.wait_for()
    assert "failing or unreachable" in failed.inner_text(), failed.inner_text()
    fake.behaviour = Behaviour(text="Back-pressure slows producers down.")
    failed.get_by_role("button", name="Retry").click()
    page.locator('.message[data-status="complete"]', has_text="Back-pressure slows producers down.").wait_for()
    assert page.locator(".message[data-role=user]").filter(has_text="Explain back-pressure").count() == 2

    # Streaming follows the bottom until the reader scrolls up; then a "Jump to latest" appears.
    fake.behaviour = Behaviour(text=" ".join(f"word{i}" for i in range(100)), chunks=100, chunk_gap=0.1)  # 10 s unless stopped
    textarea.fill("Count slowly")
    textarea.press("Enter")
    page.locator(".message[data-status=streaming] .streaming-cursor").wait_for()
    streaming_id = page.locator(".message[data-status=streaming]").get_attribute("id").removeprefix("message-")
    box.evaluate("el => { el.scrollTop = el.scrollTop - 300; }")
    page.wait_for_timeout(300)
    assert box.evaluate(distance) > 100
    page.locator("#jump-latest").wait_for(state="visible")

    # Stop: what arrived so far stays, as a complete answer marked as stopped.
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator(f"#message-{streaming_id}")
    stopped.locator("[data-stopped]").wait_for()
    assert stopped.get_attribute("data-status") == "complete" and "word0" in stopped.inner_text()
    assert "word99" not in stopped.inner_text()
    assert page.locator("#send").is_visible() and page.locator("#stop").is_hidden()
    _wait_answer_done(page, page.locator('.message[data-role="assistant"]').count())
    page.locator("#jump-latest").click()
    assert box.evaluate(distance) < 5

    # Over the daily limit: the alert gives the reset time in local time and a way out.
    with tenant_context(org_id):
        quota_limit_set(org_id=org_id, requests_per_day=1, actor=Actor.user(user))
    tab.allow_console_error(r"status of 429")
    textarea.fill("One more, please")
    textarea.press("Enter")
    alert = page.locator('#chat-alert [data-alert="quota_exceeded"]')
    alert.wait_for()
    assert "Daily request limit of 1" in alert.inner_text()
    assert re.search(r"That is (today|tomorrow) at \d\d:\d\d your time", alert.inner_text())
    assert textarea.input_value() == "One more, please"  # nothing lost
    page.wait_for_function("el => el.scrollHeight - el.scrollTop - el.clientHeight < 5", arg=box.element_handle())  # still at the newest
    alert.get_by_role("button", name="Try another provider").click()
    assert page.evaluate("document.activeElement.id") == "provider"
    tab.capture("chat-errors", full_page=False)

    # A message that alone may use more tokens than a whole day's limit: no retry, the ways out.
    with tenant_context(org_id):
        quota_limit_set(org_id=org_id, requests_per_day=1000, tokens_per_day=100, actor=Actor.user(user))
    tab.allow_console_error(r"status of 400")
    textarea.press("Enter")
    alert = page.locator('#chat-alert [data-alert="request_over_daily_limit"]')
    alert.wait_for()
    assert "more than the daily token limit of 100" in alert.inner_text()
    assert alert.get_by_role("link", name="See your usage").is_visible() and not alert.get_by_role("button", name="Try again").count()
    assert textarea.input_value() == "One more, please"


def _message_id(org_id: int, thread, seq: int) -> int:
    from tenants.context import tenant_context
    from threads.models import Message

    with tenant_context(org_id):
        return Message.objects.get(thread=thread, seq=seq).pk
