"""Privileges of the runtime role, applied after every migrate (idempotent).

The runtime role reads and writes rows (RLS decides which) but owns nothing, so it cannot
alter tables, drop policies or disable RLS. The audit log is append-only for it.
"""

from __future__ import annotations

APPEND_ONLY_TABLES = ("audit_auditlog",)


def apply_runtime_grants(cursor, runtime_role: str) -> None:
    role = _quote_ident(runtime_role)
    cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    cursor.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")
    for table in APPEND_ONLY_TABLES:
        cursor.execute("SELECT to_regclass(%s)", [table])
        if cursor.fetchone()[0] is not None:
            cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
