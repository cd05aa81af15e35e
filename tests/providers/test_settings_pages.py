"""The provider settings page and the provider-keys API, for each persona."""

import pytest

from audit.services import Actor
from providers.models import ProviderKey
from providers.services.keys import provider_key_add
from tenants.context import tenant_context
from tenants.models import UserAgentPermission

pytestmark = pytest.mark.django_db
SECRET = "sk-page-test-key-0123456789abcdefghij"


@pytest.fixture
def key_a(org_a):
    with tenant_context(org_a):
        return provider_key_add(org_id=org_a.id, provider="openai", api_key=SECRET, actor=Actor.system())


def test_admin_adds_a_key_with_htmx_and_gets_the_card_back(alice_client, org_a):
    response = alice_client.post("/settings/providers/openai/keys/", {"api_key": SECRET, "label": "prod"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b'id="provider-openai"' in response.content and b"<html" not in response.content
    assert b"sk-page-\xe2\x80\xa6ghij" in response.content
    with tenant_context(org_a):
        assert ProviderKey.objects.get().label == "prod"


def test_an_openai_compatible_key_takes_its_default_model_on_the_page_and_the_api(alice_client, org_a, settings):
    """Nothing an org admin could reach set it: every call to an OpenAI-compatible server asked
    for the model "default" (Ollama: 'model "default" not found'), and /v1/models listed none."""
    from threads.gateway import _model_ids

    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    response = alice_client.post("/settings/providers/openai_compatible/keys/",
                                 {"api_key": SECRET, "base_url": "http://127.0.0.1:11434/v1", "default_model": " llama3.2 "},
                                 headers={"HX-Request": "true"})
    assert response.status_code == 200 and b"model llama3.2" in response.content
    with tenant_context(org_a):
        assert ProviderKey.objects.get(is_active=True).default_model == "llama3.2"
    assert "openai_compatible/llama3.2" in _model_ids(org_a.id)  # what GET /v1/models lists
    made = alice_client.post("/api/v1/provider-keys/", {"provider": "openai_compatible", "api_key": SECRET,
                                                        "base_url": "http://127.0.0.1:8000/v1", "default_model": "qwen2.5"},
                             content_type="application/json")
    assert made.status_code == 201 and made.json()["default_model"] == "qwen2.5"
    too_long = alice_client.post("/settings/providers/openai_compatible/keys/",
                                 {"api_key": SECRET, "base_url": "http://127.0.0.1:11434/v1", "default_model": "m" * 201},
                                 headers={"HX-Request": "true"})
    assert too_long.status_code == 422 and b'id="openai_compatible-default_model-error"' in too_long.content


def test_inline_validation_error_comes_back_in_the_card(alice_client, org_a):
    response = alice_client.post("/settings/providers/openai/keys/", {"api_key": "bad key"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert b"does not look like an API key" in response.content
    with tenant_context(org_a):
        assert not ProviderKey.objects.exists()


def test_plain_post_redirects(alice_client, org_a):
    response = alice_client.post("/settings/providers/openai/keys/", {"api_key": SECRET})
    assert response.status_code == 302


def test_member_sees_configured_providers_but_cannot_manage(bob_client, key_a):
    page = bob_client.get("/settings/providers/")
    assert page.status_code == 200 and b"configured" in page.content
    assert b"Save key" not in page.content and b"Delete" not in page.content
    assert bob_client.post("/settings/providers/openai/keys/", {"api_key": SECRET}).status_code == 403
    assert bob_client.post(f"/settings/providers/keys/{key_a.id}/delete/").status_code == 403
    assert bob_client.post(f"/api/v1/provider-keys/{key_a.id}/test/").status_code == 403


def test_charlie_gets_404_on_org_a_keys(charlie_client, charlie, org_b, key_a):
    with tenant_context(org_b):
        from tenants.models import Membership

        Membership.objects.filter(user=charlie).update(role="owner")
    assert charlie_client.post(f"/settings/providers/keys/{key_a.id}/delete/").status_code == 404
    assert charlie_client.post(f"/settings/providers/keys/{key_a.id}/test/").status_code == 404
    assert charlie_client.delete(f"/api/v1/provider-keys/{key_a.id}/").status_code == 404
    assert charlie_client.post(f"/api/v1/provider-keys/{key_a.id}/test/").status_code == 404
    assert charlie_client.get("/api/v1/provider-keys/").json() == []
    with tenant_context(key_a.org_id):
        assert ProviderKey.objects.filter(pk=key_a.pk).exists()


def test_api_create_never_returns_the_key(alice_client, org_a):
    response = alice_client.post("/api/v1/provider-keys/", {"provider": "gemini", "api_key": SECRET}, content_type="application/json")
    assert response.status_code == 201
    assert SECRET not in response.content.decode() and "api_key" not in response.json()


def test_api_bad_input_is_400_and_nothing_stored(alice_client, org_a):
    for body in ({"provider": "skynet", "api_key": SECRET}, {"provider": "openai", "api_key": ""}, {"provider": "openai_compatible", "api_key": SECRET, "base_url": "http://localhost/v1"}):
        response = alice_client.post("/api/v1/provider-keys/", body, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["message"]
    with tenant_context(org_a):
        assert not ProviderKey.objects.exists()


def test_admin_restricts_a_member_from_a_provider(alice_client, bob, org_a):
    response = alice_client.post("/settings/providers/permissions/", {"user_id": bob.id, "provider": "openai"}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    with tenant_context(org_a):
        assert UserAgentPermission.objects.get(user=bob, provider="openai").allowed is False


def test_member_of_another_org_cannot_be_given_permissions(alice_client, charlie, org_a):
    assert alice_client.post("/settings/providers/permissions/", {"user_id": charlie.id, "provider": "openai"}).status_code == 404


def test_settings_page_shows_todays_usage_against_the_limits(alice_client, org_a):
    from providers.services import quota

    reservation = quota.quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=250)
    quota.quota_reconcile(reservation, actual_tokens=300)
    page = alice_client.get("/settings/providers/").content.decode()
    assert "1 / 1000" in page and "300 / 100000" in page
