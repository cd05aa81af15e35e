"""Create DAC's database roles and database when missing (idempotent).

Run before `manage.py migrate` by `make run` / `make test`. Connects as a PostgreSQL superuser
(DAC_DB_SUPERUSER_URL, default postgres@127.0.0.1:5432) and makes:
  - the owner role of DATABASE_OWNER_URL (owns the tables, runs migrations),
  - the runtime role of DATABASE_URL (LOGIN, NOSUPERUSER, NOBYPASSRLS, owns nothing),
  - the database, owned by the owner role.
Passwords in the URLs are set on the roles.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNTIME = "postgres://dac_app@127.0.0.1:5432/dac"
DEFAULT_OWNER = "postgres://dac_owner@127.0.0.1:5432/dac"
DEFAULT_SUPERUSER = "postgres://postgres@127.0.0.1:5432/postgres"


def _parts(url: str) -> dict:
    parts = urlsplit(url)
    return {
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password) if parts.password else None,
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "dbname": parts.path.lstrip("/"),
    }


def _ensure_role(cur, name: str, password: str | None) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    verb = "ALTER" if cur.fetchone() else "CREATE"
    statement = sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE").format(sql.SQL(verb), sql.Identifier(name))
    if password:
        statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
    cur.execute(statement)


def bootstrap(runtime_url: str, owner_url: str, superuser_url: str, dbname: str | None = None) -> None:
    runtime, owner = _parts(runtime_url), _parts(owner_url)
    dbname = dbname or runtime["dbname"]
    with psycopg.connect(superuser_url, autocommit=True) as conn, conn.cursor() as cur:
        _ensure_role(cur, owner["user"], owner["password"])
        _ensure_role(cur, runtime["user"], runtime["password"])
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname])
        if not cur.fetchone():
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(owner["user"])))
        cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
        cur.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(runtime["user"])))


def main() -> int:
    env = dict(os.environ)
    env_file = ROOT / ".env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env.setdefault(key.strip(), value.strip())
    runtime_url = env.get("DATABASE_URL", DEFAULT_RUNTIME)
    owner_url = env.get("DATABASE_OWNER_URL", DEFAULT_OWNER)
    superuser_url = env.get("DAC_DB_SUPERUSER_URL", DEFAULT_SUPERUSER)
    try:
        bootstrap(runtime_url, owner_url, superuser_url)
    except psycopg.OperationalError as exc:
        print(f"db_bootstrap: cannot reach PostgreSQL as superuser ({exc.__class__.__name__}).", file=sys.stderr)
        return 1
    print(f"db_bootstrap: roles {_parts(owner_url)['user']} (owner) and {_parts(runtime_url)['user']} (runtime) and database {_parts(runtime_url)['dbname']} ready.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
