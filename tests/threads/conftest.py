"""Fixtures for the threads tests: fake providers with org A's keys pointing at them, a token."""

import contextlib

import pytest
from django.test import override_settings

from tenants.context import tenant_context
from tests.factories import api_token_for, fake_provider_keyed


@pytest.fixture
def fakes(org_a):
    """A fake server per provider, with org A's keys pointing at them (the test runs in org A)."""
    with override_settings(DAC_ALLOW_PRIVATE_BASE_URLS=True), contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(fake_provider_keyed(org_a, name)) for name in ("openai", "perplexity", "gemini", "openrouter")}
        with tenant_context(org_a):
            yield servers


@pytest.fixture
def token_a(org_a):
    return api_token_for(org_a, "t")
