"""Failed logins are audited on the system chain: the email and the address, never the password."""

import json

import pytest

from audit.models import AuditLog
from audit.selectors import audit_chain_status
from tenants.context import operator_context

pytestmark = pytest.mark.django_db

WRONG = "hunter2-wrong-password"


def _failed_logins():
    with operator_context(reason="test", audit=False):
        return list(AuditLog.objects.filter(org_id=None, event="auth.login_failed").order_by("seq"))


def test_a_wrong_password_is_recorded_with_email_and_ip_but_not_the_password(client, alice):
    response = client.post("/login/", {"username": "Alice@Example.com", "password": WRONG}, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 200  # the form again, with its error
    [row] = _failed_logins()
    assert row.details == {"email": "alice@example.com", "ip": "198.51.100.7"}
    assert row.target == "email:alice@example.com" and row.actor_type == "system"
    stored = json.dumps([row.details, row.target, row.actor_label, row.actor_id, row.request_hash, row.response_hash])
    assert WRONG not in stored


def test_an_unknown_email_is_recorded_too(client):
    client.post("/login/", {"username": "nobody@example.com", "password": WRONG})
    assert [r.details["email"] for r in _failed_logins()] == ["nobody@example.com"]


def test_a_successful_login_records_no_failure(client, alice):
    from tests.factories import PASSWORD

    client.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert _failed_logins() == []


def test_failed_logins_keep_the_system_chain_intact(client, alice):
    for _ in range(3):
        client.post("/login/", {"username": "alice@example.com", "password": WRONG})
    with operator_context(reason="test", audit=False):
        status = audit_chain_status(org_id=None)
    assert status.ok and status.count >= 3
