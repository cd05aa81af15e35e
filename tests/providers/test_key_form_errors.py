"""A rejected provider key comes back as the card's form with the error under the field and
what was typed kept (never the key itself), with htmx, without JavaScript, and in Chromium."""

from __future__ import annotations

import re
import uuid

import pytest

from providers.models import ProviderKey
from tenants.context import tenant_context

# The browser fixtures live with the other browser tests.
from tests.browser.conftest import base_url, browser, open_tab, screenshot_dir  # noqa: F401

SECRET = "sk-form-error-test-0123456789abcdefghij"
OLLAMA = "http://localhost:11434/v1"  # the README's example: a loopback address, refused by default
PRIVATE_ERROR = "base_url points at a private, loopback or link-local address"
HTMX = {"HX-Request": "true"}
PASSWORD = "correct horse battery staple"


def _ollama_key(client, **headers):
    return client.post("/settings/providers/openai_compatible/keys/", {"api_key": SECRET, "label": "ollama", "base_url": OLLAMA}, headers=headers)


@pytest.mark.django_db
def test_private_base_url_with_htmx_comes_back_as_the_card_with_the_error_under_the_field(alice_client, org_a):
    response = _ollama_key(alice_client, **HTMX)
    page = response.content.decode()
    assert response.status_code == 422
    assert 'id="provider-openai_compatible"' in page and "<html" not in page
    error = re.search(r'<p id="openai_compatible-base_url-error"[^>]*>([^<]*)</p>', page)
    assert error and PRIVATE_ERROR in error.group(1)
    assert f'value="{OLLAMA}"' in page and 'value="ollama"' in page
    assert SECRET not in page
    with tenant_context(org_a):
        assert not ProviderKey.objects.exists()


@pytest.mark.django_db
def test_private_base_url_without_javascript_shows_the_page_with_the_error_in_the_form(alice_client, org_a):
    response = _ollama_key(alice_client)
    page = response.content.decode()
    assert response.status_code == 422 and "<html" in page
    card = page[page.index('id="provider-openai_compatible"') :]
    card = card[: card.index("</section>")]
    assert "<details open>" in card
    error = re.search(r'<p id="openai_compatible-base_url-error"[^>]*>([^<]*)</p>', card)
    assert error and PRIVATE_ERROR in error.group(1)
    assert f'value="{OLLAMA}"' in card and 'value="ollama"' in card
    assert SECRET not in page
    assert page.count("-error") == card.count("-error")  # the other cards' forms stay clean
    with tenant_context(org_a):
        assert not ProviderKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_empty_key_is_required_under_the_key_field(alice_client, org_a, headers):
    response = alice_client.post("/settings/providers/openai/keys/", {"api_key": "", "label": "prod"}, headers=headers)
    page = response.content.decode()
    assert response.status_code == 422
    assert re.search(r'<p id="openai-api_key-error"[^>]*>This field is required\.</p>', page)
    assert 'value="prod"' in page


@pytest.mark.django_db
def test_member_cannot_add_a_key(bob_client, org_a):
    assert _ollama_key(bob_client, **HTMX).status_code == 403
    assert _ollama_key(bob_client).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_rejected_keys_show_their_error_in_the_browser_and_keep_what_was_typed(open_tab):  # noqa: F811
    from tenants.services import user_signup

    email = f"lin-{uuid.uuid4().hex[:8]}@example.com"
    user_signup(email=email, password=PASSWORD, org_name="Local Models")
    tab = open_tab()
    tab.allow_console_error(r"status of 422")  # Chromium logs every 4xx; the page must explain it
    page = tab.page
    tab.log_in(email, PASSWORD)
    tab.goto("/settings/providers/")

    # The README's Ollama example is refused (private address): the card says why, in the form.
    card = page.locator("#provider-openai_compatible")
    card.get_by_text("Add a key").click()
    card.get_by_label("API key").fill(SECRET)
    card.get_by_label("Label (optional)").fill("ollama")
    card.get_by_label(re.compile("Base URL")).fill(OLLAMA)
    card.get_by_role("button", name="Save key").click()
    error = card.locator("#openai_compatible-base_url-error")
    error.wait_for()
    assert PRIVATE_ERROR in error.inner_text() and "DAC_ALLOW_PRIVATE_BASE_URLS" in error.inner_text()
    base = card.get_by_label(re.compile("Base URL"))
    assert base.input_value() == OLLAMA and base.get_attribute("aria-invalid") == "true"
    assert card.get_by_label("Label (optional)").input_value() == "ollama"
    assert card.get_by_label("API key").input_value() == ""
    assert SECRET not in page.content()
    page.wait_for_function("id => document.activeElement.id === id", arg="openai_compatible-base_url")  # keyboard users land on it

    # OpenAI with no key at all.
    card = page.locator("#provider-openai")
    card.get_by_text("Add a key").click()
    card.get_by_role("button", name="Save key").click()
    card.locator("#openai-api_key-error").get_by_text("This field is required.").wait_for()
    page.wait_for_function("id => document.activeElement.id === id", arg="openai-api_key")
