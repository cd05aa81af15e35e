"""Headless provisioning and ops commands, through call_command."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from providers.models import QuotaLimit
from tenants.context import operator_context, tenant_context
from tenants.models import ApiToken, Membership, Organization

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_org_user_and_token():
    assert "Created organization acme" in _run("create_org", "acme", "--name", "Acme Inc")
    assert "Created user ops@acme.test as admin" in _run("create_user", "ops@acme.test", "--org", "acme", "--role", "admin", "--password", "a long passphrase 123")
    token = _run("create_api_token", "acme", "ci").strip()
    assert token.startswith("dac_")
    with operator_context(reason="test", audit=False):
        org = Organization.objects.get(slug="acme")
    with tenant_context(org):
        assert Membership.objects.get().role == "admin"
        assert ApiToken.objects.get().name == "ci"


def test_duplicate_slug_is_a_command_error_and_nothing_is_written(org_a):
    with pytest.raises(CommandError, match="already taken"):
        _run("create_org", "org-a")
    with operator_context(reason="test", audit=False):
        assert Organization.objects.filter(slug="org-a").count() == 1


def test_unknown_org_is_a_command_error():
    with pytest.raises(CommandError, match="No organization"):
        _run("create_user", "x@example.com", "--org", "nope")


def test_set_limits_stores_and_audits(org_a):
    out = _run("set_limits", "org-a", "--provider", "openai", "--requests", "50", "--tokens", "9000")
    assert "org-a / openai: 50 requests and 9,000 tokens per day." in out
    with tenant_context(org_a):
        limit = QuotaLimit.objects.get(provider="openai")
        assert (limit.requests_per_day, limit.tokens_per_day) == (50, 9000)
        assert AuditLog.objects.filter(event="limits.changed").exists()


def test_set_limits_of_one_kind_says_the_limit_of_the_other_that_applies(org_a, settings):
    """It printed "5 requests, None tokens per day" while the default token limit applied."""
    settings.DAC_DEFAULT_TOKENS_PER_DAY = 100_000
    out = _run("set_limits", "org-a", "--provider", "openai", "--requests", "5")
    assert "org-a / openai: 5 requests and 100,000 tokens (not set here: the org-wide limit or the default) per day." in out
    _run("set_limits", "org-a", "--tokens", "7000")  # org-wide
    assert "and 7,000 tokens (not set here" in _run("set_limits", "org-a", "--provider", "openai", "--requests", "6")


@pytest.mark.parametrize("value", ["-1", "abc", "99999999999999"])
def test_set_limits_refuses_bad_numbers_and_changes_nothing(org_a, value):
    with pytest.raises(CommandError):
        _run("set_limits", "org-a", "--requests", value)
    with tenant_context(org_a):
        assert not QuotaLimit.objects.exists()


def test_set_limits_refuses_unknown_provider(org_a):
    with pytest.raises(CommandError, match="Unknown provider"):
        _run("set_limits", "org-a", "--provider", "skynet", "--requests", "5")


def test_operator_bypass_is_audited():
    with operator_context(reason="unit test look", actor="tester"):
        pass
    with operator_context(reason="read", audit=False):
        assert AuditLog.objects.filter(event="operator.bypass", details__reason="unit test look").exists()
