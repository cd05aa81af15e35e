"""What a person sees, checked without a browser: the landing page, labels on every control,
alerts that say what to do next, the dark-mode cookie, the chat page's moving parts.
(The browser itself is driven in tests/browser/.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from providers.selectors import PROVIDER_LABELS
from routing.rules import RULE_NAMES, RULE_PROVIDERS
from tenants.context import tenant_context
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


def _thread(org, **kwargs) -> Thread:
    with tenant_context(org):
        return Thread.objects.create(org=org, title="UX checks", **kwargs)


def _failed_answer(org, thread, category: str, message: str = "It failed.") -> Message:
    with tenant_context(org):
        Message.objects.create(org=org, thread=thread, seq=1, role="user", content="the question")
        return Message.objects.create(
            org=org,
            thread=thread,
            seq=2,
            role="assistant",
            status="failed",
            provider="openai",
            model="gpt-4o-mini",
            error_category=category,
            error_message=message,
        )


# ---------------------------------------------------------------- landing


def test_landing_says_what_dac_is_for_whom_and_what_it_costs(client):
    html = client.get("/").content.decode()
    for text in (
        "One workspace and gateway for your team",
        "Who it is for",
        "One tenant model",
        "Bring your own keys",
        "Routing by intent",
        "Quotas that hold",
        "tamper-evident audit",
        "How routing works",
        "Pricing",
        "Self-hosted",
        "Team",
        "Enterprise",
    ):
        assert text in html, text
    assert 'href="/signup/"' in html and 'href="/demo"' in html
    assert "checkout" not in html.lower() and "credit card" not in html.lower()


def test_landing_lists_the_five_routing_rules_in_order_with_their_providers(client):
    html = client.get("/").content.decode()
    cards = re.findall(r'<li [^>]*data-rule="([a-z_]+)"[^>]*>(.*?)</li>', html, flags=re.DOTALL)
    assert [name for name, _ in cards] == list(RULE_NAMES)
    for name, body in cards:
        label = PROVIDER_LABELS[RULE_PROVIDERS[name]].split()[-1]  # "Google Gemini" → "Gemini"
        assert f"<strong>{label}</strong>" in body, (name, label)


def test_signed_in_people_skip_the_landing(alice_client):
    assert alice_client.get("/")["Location"] == "/threads/"


# ---------------------------------------------------------------- accessibility without a browser


class _Controls(HTMLParser):
    """Collects form controls and how each is labelled."""

    def __init__(self):
        super().__init__()
        self.label_for: set[str] = set()
        self.controls: list[dict] = []
        self.open_labels = 0
        self.buttons: list[dict] = []
        self._button: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and attrs.get("type") in ("hidden", "submit", "button"):
                return
            self.controls.append({**attrs, "_tag": tag, "_in_label": self.open_labels > 0})
        elif tag == "button":
            self._button = {**attrs, "_text": ""}
        elif tag == "svg" and self._button is not None:
            self._button["_svg"] = True

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels -= 1
        elif tag == "button" and self._button is not None:
            self.buttons.append(self._button)
            self._button = None

    def handle_data(self, data):
        if self._button is not None:
            self._button["_text"] += data


def _unlabelled(html: str) -> list[str]:
    parser = _Controls()
    parser.feed(html)
    missing = [
        f"<{c['_tag']} name={c.get('name')} id={c.get('id')}>"
        for c in parser.controls
        if not (c.get("aria-label") or c.get("aria-labelledby") or c["_in_label"] or c.get("id") in parser.label_for)
    ]
    missing += [f"<button {b}>" for b in parser.buttons if not (b["_text"].strip() or b.get("aria-label"))]
    return missing


@pytest.fixture
def main_pages(alice_client, org_a):
    thread = _thread(org_a)
    _failed_answer(org_a, thread, "rate_limited")
    return {
        "landing": (Client(), "/"),
        "signup": (Client(), "/signup/"),
        "login": (Client(), "/login/"),
        "dashboard": (alice_client, "/dashboard/"),
        "threads": (alice_client, "/threads/"),
        "chat": (alice_client, f"/threads/{thread.pk}/"),
        "providers": (alice_client, "/settings/providers/"),
        "routing": (alice_client, "/settings/routing/"),
        "members": (alice_client, "/members/"),
        "tokens": (alice_client, "/tokens/"),
    }


def test_every_control_on_every_main_page_has_a_label(main_pages):
    for name, (client, path) in main_pages.items():
        response = client.get(path)
        assert response.status_code == 200, name
        assert _unlabelled(response.content.decode()) == [], name


def test_every_page_has_a_skip_link_a_main_landmark_and_a_menu_for_small_screens(main_pages):
    for name, (client, path) in main_pages.items():
        html = client.get(path).content.decode()
        assert 'href="#main"' in html and '<main id="main"' in html, name
        assert 'aria-controls="nav-panel"' in html and 'id="nav-panel"' in html, name
        assert "data-theme-toggle" in html and 'aria-pressed="false"' in html, name


def test_the_dark_mode_cookie_renders_the_dark_class_before_any_script_runs(alice_client):
    assert '<html lang="en" class="h-full">' in alice_client.get("/threads/").content.decode()
    alice_client.cookies["dac_theme"] = "dark"
    assert '<html lang="en" class="h-full dark">' in alice_client.get("/threads/").content.decode()
    alice_client.cookies["dac_theme"] = '"><script>'
    assert '<html lang="en" class="h-full">' in alice_client.get("/threads/").content.decode()


def test_the_current_org_is_shown_and_the_nav_keeps_other_apps_links(alice_client):
    html = alice_client.get("/threads/").content.decode()
    assert "Org A" in html
    for href in ("/threads/", "/members/", "/tokens/", "/settings/providers/", "/settings/routing/"):
        assert f'href="{href}"' in html, href


# ---------------------------------------------------------------- chat: errors with a next step


@pytest.mark.parametrize(
    ("category", "expected", "absent"),
    [
        ("auth", ["Open provider settings", 'href="/settings/providers/"', "data-retry", "data-pick-provider"], ["data-edit"]),
        ("quota_exceeded", ["Open provider settings", "data-pick-provider"], []),
        ("rate_limited", ["data-retry", "data-pick-provider"], ["Open provider settings"]),
        ("timeout", ["data-retry", "data-pick-provider"], []),
        ("unavailable", ["data-retry", "data-pick-provider"], []),
        ("bad_request", ["data-edit", "data-pick-provider"], []),
        ("content_filtered", ["data-edit"], ["data-retry", "data-pick-provider"]),
        ("internal", ["data-retry"], ["data-pick-provider"]),
    ],
)
def test_a_failed_answer_says_what_went_wrong_and_offers_the_next_step(alice_client, org_a, category, expected, absent):
    thread = _thread(org_a)
    answer = _failed_answer(org_a, thread, category, message=f"Sentence for {category}.")
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    block = html.split(f'id="message-{answer.pk}"', 1)[1].split("</article>", 1)[0]
    assert 'role="alert"' in block and f"Sentence for {category}." in block
    for text in expected:
        assert text in block, (category, text)
    for text in absent:
        assert text not in block, (category, text)


def test_the_chat_page_carries_an_alert_for_every_pre_stream_error(alice_client, org_a):
    thread = _thread(org_a)
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()

    def template(code: str) -> str:
        match = re.search(rf'<template id="alert-{code}">(.*?)</template>', html, flags=re.DOTALL)
        assert match, code
        return match.group(1)

    quota = template("quota_exceeded")
    assert 'data-slot="reset-time"' in quota and "your time" in quota and "Try another provider" in quota
    assert 'href="/settings/providers/"' in template("no_key") and "Add a key" in template("no_key")
    assert 'href="/settings/providers/"' in template("no_provider")
    assert "Try another provider" in template("forbidden")
    assert "archived" in template("thread_archived")
    assert "data-edit" in template("validation_error")
    assert f"/login/?next=/threads/{thread.pk}/" in template("not_authenticated")
    assert "Reload" in template("stale")
    assert "Try again" in template("network") and "Try again" in template("default")


def test_a_stopped_answer_says_it_was_stopped(alice_client, org_a):
    thread = _thread(org_a)
    with tenant_context(org_a):
        Message.objects.create(org=org_a, thread=thread, seq=1, role="user", content="count to a million")
        Message.objects.create(
            org=org_a, thread=thread, seq=2, role="assistant", status="complete", content="1, 2, 3", error_message="Stopped."
        )
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert "You stopped this answer" in html and "data-stopped" in html


def test_answers_carry_their_markdown_for_the_copy_button(alice_client, org_a):
    thread = _thread(org_a)
    with tenant_context(org_a):
        Message.objects.create(org=org_a, thread=thread, seq=1, role="user", content="code please")
        Message.objects.create(
            org=org_a, thread=thread, seq=2, role="assistant", status="complete", content='Here:\n\n```python\nprint("<hi>")\n```'
        )
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert 'data-raw="Here:\n\n```python\nprint(&quot;&lt;hi&gt;&quot;)\n```"' in html
    assert "data-copy" in html and 'class="code-block" data-lang="python"' in html


def test_the_composer_has_send_stop_and_a_provider_picker(alice_client, org_a):
    thread = _thread(org_a)
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert 'id="send"' in html and re.search(r'<button id="stop" type="button"[^>]*hidden', html)
    assert '<label for="provider"' in html and '<select id="provider"' in html
    assert 'id="tpl-assistant"' in html and "The assistant is writing" in html


def test_an_archived_thread_offers_to_restore_it_and_has_no_composer(alice_client, org_a):
    thread = _thread(org_a, archived=True)
    html = alice_client.get(f"/threads/{thread.pk}/").content.decode()
    assert 'id="composer"' not in html and "Restore this thread" in html
    assert "data-suggest" not in html
