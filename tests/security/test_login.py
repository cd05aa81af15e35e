"""Login brute force is throttled; a session id is never reused across a login."""

import pytest

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_repeated_failures_lock_the_email_even_with_the_right_password(client, alice):
    for _ in range(5):
        assert client.post("/login/", {"username": "alice@example.com", "password": "wrong"}).status_code == 200
    response = client.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 429 and b"Too many failed attempts" in response.content
    assert int(response["Retry-After"]) > 0
    assert client.get("/members/").status_code == 302  # not logged in


def test_a_success_clears_the_count(client, alice):
    for _ in range(4):
        client.post("/login/", {"username": "alice@example.com", "password": "wrong"})
    assert client.post("/login/", {"username": "alice@example.com", "password": PASSWORD}).status_code == 302
    client.post("/logout/")
    for _ in range(4):
        client.post("/login/", {"username": "alice@example.com", "password": "wrong"})
    assert client.post("/login/", {"username": "alice@example.com", "password": PASSWORD}).status_code == 302


def test_login_rotates_the_session_key(client, alice):
    client.get("/login/")
    client.session.save()
    before = client.session.session_key
    client.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    assert client.session.session_key != before


def test_failed_logins_are_audited_without_the_password(client, alice):
    from audit.models import AuditLog
    from tenants.context import operator_context

    client.post("/login/", {"username": "alice@example.com", "password": "hunter2-secret"})
    with operator_context(reason="test", audit=False):
        row = AuditLog.objects.filter(event="auth.login_failed").latest("seq")
    assert "alice@example.com" in str(row.details) and "hunter2-secret" not in str(row.details)
