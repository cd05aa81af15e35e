"""Per-org settings read on every provider call are cached for a few seconds per process, and a
change made through the models is seen at once (dac/org_cache.py)."""

import pytest

from audit.services import Actor
from providers.services.keys import active_keys, provider_key_add, provider_key_delete
from routing.services import org_routing, routing_settings_update
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db(transaction=True)


def _add_key(org, provider="openai", secret="sk-test-0123456789"):
    with tenant_context(org):
        return provider_key_add(org_id=org.id, provider=provider, api_key=secret, actor=Actor.system())


def test_active_keys_are_read_once_then_served_from_the_cache(org_a, django_assert_num_queries):
    _add_key(org_a)
    with tenant_context(org_a):
        assert set(active_keys()) == {"openai"}
        with django_assert_num_queries(0):
            assert set(active_keys()) == {"openai"}


def test_adding_replacing_and_deleting_a_key_is_seen_at_once(org_a, org_b):
    with tenant_context(org_a):
        assert active_keys() == {}
    first = _add_key(org_a)
    with tenant_context(org_a):
        assert active_keys()["openai"].pk == first.pk
    second = _add_key(org_a, secret="sk-test-9876543210")
    with tenant_context(org_a):
        assert active_keys()["openai"].pk == second.pk
        provider_key_delete(key=second, actor=Actor.system())
        assert "openai" not in active_keys()
    with tenant_context(org_b):
        assert active_keys() == {}  # one org's entry never answers for another


def test_the_cached_copy_cannot_be_changed_by_a_caller(org_a):
    _add_key(org_a)
    with tenant_context(org_a):
        active_keys().clear()
        assert set(active_keys()) == {"openai"}


def test_routing_settings_changes_are_seen_at_once(org_a):
    with tenant_context(org_a):
        assert org_routing().disabled == frozenset()
        routing_settings_update(org_id=org_a.id, actor=Actor.system(), disabled_rules=["structured"])
        assert org_routing().disabled == frozenset({"structured"})


def test_entries_expire_after_the_configured_seconds(org_a, settings, django_assert_num_queries):
    settings.DAC_SETTINGS_CACHE_SECONDS = 0
    with tenant_context(org_a):
        active_keys()
        with django_assert_num_queries(1):
            active_keys()
