"""Row-level security, read with raw SQL as the runtime role."""

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.db.utils import DatabaseError

from tenants.context import tenant_context
from tenants.models import Membership, Organization

pytestmark = pytest.mark.django_db


def _raw_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def test_tests_run_as_a_role_that_cannot_bypass_rls():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


def test_with_no_org_set_no_row_is_visible(alice, charlie):
    assert _raw_count("tenants_membership") == 0
    assert _raw_count("tenants_organization") == 0


def test_raw_sql_in_org_a_sees_zero_rows_of_org_b(org_a, org_b, alice, bob, charlie):
    with tenant_context(org_a):
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT org_id FROM tenants_membership")
            assert [row[0] for row in cursor.fetchall()] == [org_a.id]
            cursor.execute("SELECT count(*) FROM tenants_membership WHERE org_id = %s", [org_b.id])
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT id FROM tenants_organization")
            assert [row[0] for row in cursor.fetchall()] == [org_a.id]


def test_insert_into_another_org_fails(org_a, org_b, alice):
    with tenant_context(org_a):
        with pytest.raises(DatabaseError, match="row-level security"):
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO tenants_membership (org_id, user_id, role, created_at) VALUES (%s, %s, 'owner', now())",
                        [org_b.id, alice.id],
                    )
    with tenant_context(org_b):
        assert Membership.objects.count() == 0


def test_update_cannot_move_a_row_into_another_org(org_a, org_b, alice):
    with tenant_context(org_a):
        with pytest.raises(DatabaseError, match="row-level security"):
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE tenants_membership SET org_id = %s", [org_b.id])


def test_orm_refuses_to_query_tenant_tables_without_an_org(alice):
    from tenants.context import TenantContextMissing

    with pytest.raises(TenantContextMissing):
        list(Membership.objects.all())


def test_empty_setting_after_reset_shows_nothing(org_a, alice):
    with tenant_context(org_a):
        assert _raw_count("tenants_membership") == 1
    with connection.cursor() as cursor:
        cursor.execute("RESET app.org_id")
        cursor.execute("SELECT count(*) FROM tenants_membership")
        assert cursor.fetchone()[0] == 0


def test_runtime_role_cannot_disable_rls():
    with pytest.raises(ProgrammingError):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE tenants_membership DISABLE ROW LEVEL SECURITY")


def test_organization_slug_is_unique_across_orgs(org_a):
    from dac.errors import Conflict
    from tenants.services import org_create

    with pytest.raises(Conflict, match="already taken"):
        org_create(name="Another", slug="org-a")
    with tenant_context(org_a):
        assert Organization.objects.count() == 1


def test_check_rls_command_passes():
    from django.core.management import call_command

    call_command("check_rls")


def test_rollback_does_not_leave_a_stale_tenant_on_the_connection(org_a, org_b, alice, charlie):
    with tenant_context(org_a):
        try:
            with transaction.atomic():
                assert _raw_count("tenants_membership") == 1
                raise IntegrityError("boom")
        except IntegrityError:
            pass
        assert _raw_count("tenants_membership") == 1
    with tenant_context(org_b):
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT org_id FROM tenants_membership")
            assert [row[0] for row in cursor.fetchall()] == [org_b.id]
