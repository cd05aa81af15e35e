"""The audit log is append-only for the runtime role (privileges), and chains stay linear."""

import threading

import pytest
from django.db import IntegrityError, ProgrammingError, connection, connections, transaction

from audit.models import AuditLog
from audit.selectors import audit_chain_status
from audit.services import Actor, audit_record
from tenants.context import operator_context, tenant_context

pytestmark = pytest.mark.django_db


def _run(sql, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_runtime_role_cannot_update_audit_rows(org_a):
    with tenant_context(org_a):
        assert AuditLog.objects.count() == 1  # org.created
        with pytest.raises(ProgrammingError, match="permission denied"):
            _run("UPDATE audit_auditlog SET details = '{}'::jsonb")
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            AuditLog.objects.update(event="nothing.happened")
        assert AuditLog.objects.get().event == "org.created"


def test_the_runtime_role_cannot_delete_audit_rows(org_a):
    with tenant_context(org_a):
        with pytest.raises(ProgrammingError, match="permission denied"):
            _run("DELETE FROM audit_auditlog")
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            AuditLog.objects.all().delete()
        assert AuditLog.objects.count() == 1


def test_the_runtime_role_can_append(org_a):
    with tenant_context(org_a):
        row = audit_record(org_id=org_a.id, actor=Actor.system(), event="test.appended", details={"n": 1})
        assert row.seq == 2 and AuditLog.objects.count() == 2


def test_the_system_chain_cannot_hold_two_rows_with_one_seq(org_a):
    audit_record(org_id=None, actor=Actor.system(), event="test.system")
    with operator_context(reason="test", audit=False):
        seq = AuditLog.objects.filter(org_id=None).order_by("-seq").values_list("seq", flat=True).first()
        with pytest.raises(IntegrityError):
            _run(
                "INSERT INTO audit_auditlog (org_id, seq, actor_type, actor_id, actor_label, event, target, details,"
                " request_hash, response_hash, created_at, prev_hash, hash) VALUES"
                " (NULL, %s, 'system', '', '', 'forged', '', '{}', '', '', now(), '', '')",
                [seq],
            )


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_make_one_gapless_chain(org_a):
    errors = []

    def append(n):
        try:
            with tenant_context(org_a):
                for i in range(n):
                    audit_record(org_id=org_a.id, actor=Actor.system(), event="test.concurrent", details={"i": i})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with tenant_context(org_a):
        seqs = list(AuditLog.objects.order_by("seq").values_list("seq", flat=True))
        status = audit_chain_status(org_id=org_a.id)
    assert seqs == list(range(1, 42)) and status.ok and status.count == 41
