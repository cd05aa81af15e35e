"""Under ASGI the CSV export streams in keyset-paged chunks, in the requesting org."""

import csv
import io

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from audit import views
from audit.services import Actor, audit_record
from dac.asgi import django_application
from tenants.context import tenant_context

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_csv_export_streams_every_row_of_the_org_only(org_a, org_b, alice, monkeypatch):
    monkeypatch.setattr(views, "EXPORT_CHUNK", 3)

    def setup() -> str:
        with tenant_context(org_a):
            for i in range(10):
                audit_record(org_id=org_a.id, actor=Actor.user(alice), event="test.row", details={"i": i})
        with tenant_context(org_b):
            audit_record(org_id=org_b.id, actor=Actor.system(), event="test.other_org")
        client = Client()
        client.force_login(alice)
        return client.cookies["sessionid"].value

    session = await sync_to_async(setup)()
    transport = httpx.ASGITransport(app=django_application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", cookies={"sessionid": session}) as client:
        response = await client.get("/audit/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["seq"]) for r in rows] == list(range(1, 12))  # org.created + 10, in order
    assert "test.other_org" not in response.text
