"""Test set-up: the owner creates and migrates the test database, the tests run as the
runtime role (no superuser, no BYPASSRLS), so RLS is what the tests see. Personas:
org_a, org_b, alice (owner of A), bob (member of A), charlie (member of B)."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from django.conf import settings
from django.test import Client
from psycopg import sql

from tenants.context import tenant_context
from tenants.models import User
from tests.factories import OrganizationFactory, member

SUPERUSER_URL = os.environ.get("DAC_DB_SUPERUSER_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    from django.core.management import call_command
    from django.db import connections

    # One database per test run, so runs side by side (two checkouts, CI and a developer) do
    # not drop each other's database; leftovers of dead runs are removed first.
    base = "test_" + settings.DATABASES["default"]["NAME"]
    name = f"{base}_{os.getpid()}"
    for alias in ("default", "owner"):
        connections[alias].close()
        connections[alias].settings_dict["NAME"] = name
        settings.DATABASES[alias]["NAME"] = name
    owner = settings.DATABASES["owner"]["USER"]
    runtime = settings.DATABASES["default"]["USER"]
    with psycopg.connect(SUPERUSER_URL, autocommit=True) as conn:
        _drop_stale_test_databases(conn, base)
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0)
        with connections["owner"].cursor() as cursor:
            # Only so pytest-django can flush after transactional tests; production never grants it.
            cursor.execute(sql.SQL("GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(runtime)).as_string(cursor.connection))
        connections["owner"].close()
    yield
    with django_db_blocker.unblock():
        from metrics.services import metrics_flush

        metrics_flush()  # before the database goes away, not at interpreter exit
        for alias in ("default", "owner"):
            connections[alias].close()
            if connections[alias].pool is not None:
                connections[alias].close_pool()
    with psycopg.connect(SUPERUSER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _drop_stale_test_databases(conn, base: str) -> None:
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [base + "_%"]).fetchall()
    for (datname,) in rows:
        pid = datname.rsplit("_", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(datname)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def org_a(db):
    return OrganizationFactory(name="Org A", slug="org-a")


@pytest.fixture
def org_b(db):
    return OrganizationFactory(name="Org B", slug="org-b")


@pytest.fixture
def alice(org_a):
    return member(org_a, "alice@example.com", "owner")


@pytest.fixture
def bob(org_a):
    return member(org_a, "bob@example.com", "member")


@pytest.fixture
def charlie(org_b):
    return member(org_b, "charlie@example.com", "member")


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice):
    return _client_for(alice)


@pytest.fixture
def operator_client(db):
    """A superuser's session: the operator admin."""
    return _client_for(User.objects.create_superuser(email="root@example.com", password="x" * 20))


@pytest.fixture
def bob_client(bob):
    return _client_for(bob)


@pytest.fixture
def charlie_client(charlie):
    return _client_for(charlie)


@pytest.fixture
def in_org_a(org_a):
    with tenant_context(org_a):
        yield org_a


@pytest.fixture
def asgi_server(transactional_db):
    from tests.live_server import LiveServer

    server = LiveServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _own_cache_keys(settings):
    """Each test its own cache namespace (login throttles, stop flags): nothing leaks."""
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test:{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def _own_quota_keys(monkeypatch):
    """Each test counts quota under its own Redis prefix: no leaks between tests or into dev."""
    from providers.services import quota

    quota._limits_cache.clear()
    monkeypatch.setattr(quota, "_service", quota.QuotaService(key_prefix=f"dac:test:{uuid.uuid4().hex}:q"))
