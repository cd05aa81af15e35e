"""Real processes on loopback for the fault-injection tests: a private PostgreSQL cluster, a
the redis-server of tests/servers.py, and DAC itself as a uvicorn subprocess with production settings.

Nothing here touches the machine's own PostgreSQL (5432) or Redis (6379): every server is
started on a free port in a temporary folder and killed when its test is done.

    with PgCluster(tmp) as pg:
        redis = RedisServer().start()                              # kill() and start() again
        dac = DacProcess(tmp, pg=pg, redis_url=redis.url, extra_env={...})
        dac.prepare()          # roles, database, migrations, org + user + token
        dac.start()            # uvicorn on a free port; waits for /healthz
        dac.url, dac.token, dac.log_text()
        pg.restart()           # pg_ctl restart -m fast
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("DAC_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

# The test suite's own secrets (dac/settings_test.py): never used outside tests.
TEST_SECRET_KEY = "test-secret-key-for-the-dac-test-suite-only-0123456789"
TEST_ENCRYPTION_KEYS = "dGVzdC1tYXN0ZXIta2V5LW9uZS1mb3ItZGFjLXRlc3Q=,dGVzdC1tYXN0ZXIta2V5LXR3by1mb3ItZGFjLXRlc3Q="


def pg_available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` system user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PgCluster:
    """A throw-away PostgreSQL 15 cluster on a free loopback port (trust auth, fsync off)."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.started = False

    def __enter__(self) -> PgCluster:
        return self.init().start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def url(self, user: str = "postgres", db: str = "postgres") -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{db}"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(_as_postgres([str(PG_BIN / argv[0]), *argv[1:]]), capture_output=True, text=True, timeout=timeout, check=True)

    def init(self) -> PgCluster:
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for parent in (self.dir.parent,):  # the postgres user must be able to reach its folder
                os.chmod(parent, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8", "--locale=C")
        return self

    def _ctl(self, action: str, *extra: str, timeout: float = 60) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "30", action, *extra, timeout=timeout)

    def start(self) -> PgCluster:
        # free_port() only finds a port that was free a moment ago: on the first start another
        # process may have taken it, so pick another. Later starts must keep the port DAC uses.
        for _ in range(3):
            try:
                self._ctl("start")
                self.started = True
                return self
            except subprocess.CalledProcessError as exc:
                log = self.log.read_text() if self.log.exists() else ""
                if self.started or "could not bind" not in log:
                    raise RuntimeError(f"pg_ctl start failed ({exc.stderr.strip()}):\n{log[-3000:]}") from exc
                self.port = free_port()
        raise RuntimeError("pg_ctl start: no free port after 3 tries")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate"]), capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, query: str, params: list | None = None, *, db: str = "dac") -> list[tuple]:
        """Read as the superuser (RLS does not apply): for checking what DAC left behind."""
        import psycopg

        with psycopg.connect(self.url("postgres", db), autocommit=True) as conn:
            cursor = conn.execute(query, params or [])
            return cursor.fetchall() if cursor.description else []


class DacProcess:
    """DAC served by uvicorn in a subprocess with production settings (DEBUG off)."""

    def __init__(self, base: Path, *, pg: PgCluster, redis_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.base = base
        self.pg = pg
        self.port = free_port()
        self.log_path = base / "dac.log"
        self.process: subprocess.Popen | None = None
        self.token = ""
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DAC_", "DATABASE_", "DJANGO_", "REDIS_", "QDRANT_"))},
            "DJANGO_SETTINGS_MODULE": "dac.settings",
            "DAC_SKIP_DOTENV": "1",
            "DEBUG": "0",
            "SECRET_KEY": TEST_SECRET_KEY,
            "DAC_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
            "DAC_HTTPS": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DAC_DB_SUPERUSER_URL": pg.url(),
            "DATABASE_URL": pg.url("dac_app", "dac"),
            "DATABASE_OWNER_URL": pg.url("dac_owner", "dac"),
            "REDIS_URL": redis_url,
            "QDRANT_URL": "",
            "QDRANT_PATH": "",
            "DAC_DEMO_STREAM_DELAY_MS": "0",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args[:1])} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def prepare(self, *, org: str = "acme", email: str = "ops@acme.test", password: str = "correct horse battery staple") -> None:
        """Roles and database (scripts/db_bootstrap.py), migrations, an org, a user and a token."""
        done = subprocess.run([sys.executable, "scripts/db_bootstrap.py"], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"db_bootstrap failed:\n{done.stdout}\n{done.stderr}")
        self.manage("migrate", "--verbosity", "0")
        self.manage("create_org", org, "--name", "Acme")
        self.manage("create_user", email, "--org", org, "--role", "owner", "--password", password)
        self.token = self.manage("create_api_token", org, "faults").strip().splitlines()[-1]

    def start(self, timeout: float = 30) -> DacProcess:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "dac.asgi:application", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-access-log", "--timeout-graceful-shutdown", "2"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"DAC did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "log", None) is not None:
            self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)
