"""Row-level security policies, as migration operations and as checks.

Every tenant-owned table gets RLS ENABLED and FORCED (so the table owner obeys it too) and one
policy, `tenant_isolation`, on the session setting `app.org_id`. `current_setting` returns ''
after a RESET, hence the nullif: unset or empty means no row is visible and none is writable.
"""

from __future__ import annotations

from django.db import migrations

POLICY_NAME = "tenant_isolation"


def tenant_predicate(column: str = "org_id") -> str:
    return (
        f"({column} = nullif(current_setting('app.org_id', true), '')::bigint"
        " OR current_setting('app.operator', true) = 'on')"
    )


def enable_rls(table: str, column: str = "org_id") -> migrations.RunSQL:
    predicate = tenant_predicate(column)
    return migrations.RunSQL(
        sql=[
            f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
            f'CREATE POLICY {POLICY_NAME} ON "{table}" USING {predicate} WITH CHECK {predicate}',
        ],
        reverse_sql=[
            f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"',
            f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
        ],
    )


def rls_problems(cursor, runtime_role: str) -> list[str]:
    """Every reason the database does not isolate tenants; empty when all is well."""
    problems: list[str] = []
    cursor.execute(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               pg_get_userbyid(c.relowner),
               EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'org_id' AND NOT a.attisdropped)
               OR c.relname = 'tenants_organization')
        ORDER BY c.relname
        """,
        [POLICY_NAME],
    )
    for table, enabled, forced, owner, has_policy in cursor.fetchall():
        if not enabled:
            problems.append(f"{table}: row-level security is not enabled")
        if not forced:
            problems.append(f"{table}: row-level security is not forced")
        if not has_policy:
            problems.append(f"{table}: policy {POLICY_NAME} is missing")
        if owner == runtime_role:
            problems.append(f"{table}: owned by the runtime role {runtime_role}")
    cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [runtime_role])
    row = cursor.fetchone()
    if row is None:
        problems.append(f"runtime role {runtime_role} does not exist")
    else:
        if row[0]:
            problems.append(f"runtime role {runtime_role} is a superuser (superusers bypass RLS)")
        if row[1]:
            problems.append(f"runtime role {runtime_role} has BYPASSRLS")
    return problems
