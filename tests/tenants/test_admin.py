"""The operator admin: superusers see every org, each use is audited; others are kept out."""

import pytest

from audit.models import AuditLog
from tenants.context import operator_context
from tenants.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    operator = User.objects.create_superuser(email="root@example.com", password="x" * 20)
    client.force_login(operator)
    return client


def test_superuser_sees_every_orgs_memberships(operator_client, alice, charlie):
    response = operator_client.get("/admin/tenants/membership/")
    assert response.status_code == 200
    assert b"alice@example.com" in response.content and b"charlie@example.com" in response.content
    with operator_context(reason="check", audit=False):
        assert AuditLog.objects.filter(event="operator.bypass", actor_label="root@example.com").exists()


def test_org_owner_cannot_use_the_admin(alice_client):
    response = alice_client.get("/admin/tenants/membership/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("path", ["/admin/tenants/organization/", "/admin/tenants/apitoken/", "/admin/audit/auditlog/", "/admin/providers/quotalimit/", "/admin/tenants/user/"])
def test_admin_list_views_render(operator_client, alice, path):
    assert operator_client.get(path).status_code == 200
