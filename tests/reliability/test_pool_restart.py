"""DAC's database backend (`dac.db`) with its pool, against a private PostgreSQL cluster that is
restarted while every pooled connection sits idle: the first borrower after the restart gets a
working connection at once, not DB_POOL_TIMEOUT's PoolTimeout (psycopg_pool alone checks the dead
ones one by one with a growing pause in between; eight of them outlast 1.5 s).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from django.db.utils import ConnectionHandler

from dac.settings import _database
from tests.reliability.procs import PgCluster, pg_available

pytestmark = pytest.mark.skipif(not pg_available(), reason="PostgreSQL 15 server binaries are not installed")

IDLE_CONNECTIONS = 8
POOL_TIMEOUT = 1.5


@pytest.fixture
def cluster():
    base = Path(tempfile.mkdtemp(prefix="dac-pool-"))
    os.chmod(base, 0o755)  # the postgres system user must reach its cluster folder inside
    pg = PgCluster(base)
    try:
        yield pg.init().start()
    finally:
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pooled(cluster, django_db_blocker):
    config = _database(cluster.url(), pool=True)
    config["OPTIONS"]["pool"].update(min_size=IDLE_CONNECTIONS, timeout=POOL_TIMEOUT)
    # A handler of its own (Django keeps pools per alias: never the test database's).
    connections = ConnectionHandler({"default": {"ENGINE": "django.db.backends.dummy"}, "restart_probe": config})
    connection = connections["restart_probe"]
    with django_db_blocker.unblock():  # pytest-django guards the test database only: this is not it
        try:
            yield connection
        finally:
            connection.close()
            connection.close_pool()


def _select_one(connection) -> float:
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    connection.close()  # back to the pool, as at the end of a request
    return time.monotonic() - started


def test_the_first_query_after_an_idle_restart_gets_a_fresh_connection(cluster, pooled):
    _select_one(pooled)  # opens the pool; borrowing before it has filled may add one more connection
    pooled.pool.wait(timeout=10)
    idle = pooled.pool.get_stats()["pool_available"]
    assert idle >= IDLE_CONNECTIONS

    cluster.restart()

    assert _select_one(pooled) < POOL_TIMEOUT / 2
    assert pooled.pool.get_stats()["connections_lost"] >= idle  # every dead one was swept
    assert [_select_one(pooled) < POOL_TIMEOUT / 2 for _ in range(3)] == [True] * 3


def test_a_healthy_pool_keeps_its_connections(pooled):
    _select_one(pooled)
    pooled.pool.wait(timeout=10)
    for _ in range(IDLE_CONNECTIONS * 2):
        _select_one(pooled)
    assert pooled.pool.get_stats().get("connections_lost", 0) == 0
