"""The operator admin: superusers see every org, each use is audited; others are kept out."""

import pytest

from audit.models import AuditLog
from tenants.context import operator_context

pytestmark = pytest.mark.django_db


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


def test_a_message_of_one_org_cannot_be_put_in_another_orgs_thread(operator_client, org_a, org_b):
    """The admin saved it (302): a message of org B in org A's thread, which neither org could
    see whole. The form now says why, and PostgreSQL refuses such a row whatever writes it."""
    from django.db import IntegrityError, transaction

    from threads.models import Message, Thread

    with operator_context(reason="test", audit=False):
        thread = Thread.objects.create(org=org_a, title="A's thread")
    form = {"org": org_b.pk, "thread": thread.pk, "seq": 1, "role": "user", "content": "hi", "status": "complete",
            "citations": "[]", "routing": "{}", "created_at_0": "2026-11-27", "created_at_1": "10:00:00"}
    response = operator_client.post("/admin/threads/message/add/", form)
    assert response.status_code == 200 and b"belongs to another organization" in response.content
    with operator_context(reason="test", audit=False):
        assert not Message.objects.filter(thread=thread).exists()
        with pytest.raises(IntegrityError), transaction.atomic():
            Message.objects.create(org=org_b, thread=thread, seq=1, role="user", content="hi")
    form["org"] = org_a.pk
    assert operator_client.post("/admin/threads/message/add/", form).status_code == 302
