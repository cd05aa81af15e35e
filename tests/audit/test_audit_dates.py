"""Date filters of the audit log: a date alone is a whole UTC day, `until` included; a date-time is
exact. The page, the CSV export and the API read them with one parser: each is tested."""

import csv
import io
import types
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from audit import services as audit_services
from audit.services import Actor, audit_record
from tenants.context import tenant_context

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators"),
]

# The entries written, by target, at these moments (UTC) around 2026-11-27.
MOMENTS = {
    "eve": datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=UTC),
    "first": datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
    "noon": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    "last": datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=UTC),
    "next": datetime(2026, 11, 28, 0, 0, tzinfo=UTC),
}


@pytest.fixture
def entries(org_a, alice, monkeypatch):
    with tenant_context(org_a):
        for target, moment in MOMENTS.items():
            with monkeypatch.context() as patch:
                # audit_record stamps rows with timezone.now(): give it this moment instead.
                patch.setattr(audit_services, "timezone", types.SimpleNamespace(now=lambda moment=moment: moment))
                audit_record(org_id=org_a.id, actor=Actor.user(alice), event="limits.changed", target=target)


def _api(client, query: str) -> list[str]:
    response = client.get(f"/api/v1/audit/?event=limits.changed&{query}")
    assert response.status_code == 200, response.content
    return sorted(row["target"] for row in response.json()["results"])


def _csv(client, query: str) -> list[str]:
    response = client.get(f"/audit/export.csv?event=limits.changed&{query}")
    assert response.status_code == 200, response.content
    rows = csv.DictReader(io.StringIO(b"".join(response).decode()))
    return sorted(row["target"] for row in rows)


def _page(client, query: str) -> list[str]:
    response = client.get(f"/audit/?event=limits.changed&{query}")
    html = response.content.decode()
    assert response.status_code == 200, html
    return sorted(target for target in MOMENTS if f">{target}<" in html)


READERS = pytest.mark.parametrize("read", [_page, _csv, _api], ids=["page", "csv", "api"])


@READERS
def test_until_a_date_includes_that_whole_day(alice_client, entries, read):
    assert read(alice_client, "until=2026-11-27") == ["eve", "first", "last", "noon"]


@READERS
def test_since_a_date_starts_at_the_start_of_that_day(alice_client, entries, read):
    assert read(alice_client, "since=2026-11-27") == ["first", "last", "next", "noon"]


@READERS
def test_from_and_to_the_same_date_shows_that_day(alice_client, entries, read):
    assert read(alice_client, "since=2026-11-27&until=2026-11-27") == ["first", "last", "noon"]


@READERS
def test_a_date_time_is_exact(alice_client, entries, read):
    noon = quote("2026-11-27T12:00:00+00:00")
    assert read(alice_client, f"until={noon}") == ["eve", "first"]
    assert read(alice_client, f"since={noon}") == ["last", "next", "noon"]
    assert read(alice_client, "since=2026-11-27T00:00:00Z&until=2026-11-27T12:00:00.000001Z") == ["first", "noon"]


@READERS
def test_the_last_possible_date_is_accepted(alice_client, entries, read):
    assert read(alice_client, "until=9999-12-31") == sorted(MOMENTS)


def test_to_before_from_is_still_refused(alice_client, entries):
    response = alice_client.get("/audit/?since=2026-11-28&until=2026-11-27")
    assert response.status_code == 400 and "since must be before until." in response.content.decode()
    assert alice_client.get("/api/v1/audit/?since=2026-11-28&until=2026-11-27").status_code == 400
    assert alice_client.get("/audit/export.csv?since=2026-11-28&until=2026-11-27").status_code == 400
