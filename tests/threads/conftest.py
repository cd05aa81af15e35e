"""Fixtures for the threads tests: fake providers with org A's keys pointing at them, a token."""

import pytest
from django.test import override_settings

from audit.services import Actor
from providers.services.keys import provider_key_add
from tenants.context import tenant_context
from tenants.services import api_token_create
from tests.fakes import FakeProvider


@pytest.fixture
def fakes(org_a):
    """A fake server per provider, with org A's keys pointing at them."""
    servers = {name: FakeProvider(name).start() for name in ("openai", "perplexity", "gemini", "openrouter")}
    with override_settings(DAC_ALLOW_PRIVATE_BASE_URLS=True), tenant_context(org_a):
        for name, fake in servers.items():
            provider_key_add(org_id=org_a.id, provider=name, api_key=f"key-for-{name}-0123456789", base_url=fake.base_url, actor=Actor.system())
        yield servers
    for fake in servers.values():
        fake.close()


@pytest.fixture
def token_a(org_a):
    with tenant_context(org_a):
        return api_token_create(org_id=org_a.id, name="t", created_by=None, actor=Actor.system()).plaintext
