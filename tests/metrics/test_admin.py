"""Operators see every org's rollups in the admin; org owners are kept out."""

from datetime import UTC, datetime, timedelta

import pytest

from metrics.services import metrics_rollup_org
from tenants.context import tenant_context
from tests.metrics.conftest import put_calls, put_requests

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollups(org_a, org_b):
    now = datetime.now(UTC)
    for org, route in ((org_a, "/from-org-a/"), (org_b, "/from-org-b/")):
        with tenant_context(org):
            put_requests(org.id, [(now - timedelta(minutes=2), route, 12.0)])
            put_calls(org.id, [(now - timedelta(minutes=2), "openai", f"model-of-{org.slug}", "ok", 700, 1, 1)])
            metrics_rollup_org(org_id=org.id, force=True)


def test_operator_sees_every_orgs_request_rollups(operator_client, rollups):
    html = operator_client.get("/admin/metrics/requestrollup/").content.decode()
    assert "/from-org-a/" in html and "/from-org-b/" in html


def test_operator_filters_provider_rollups(operator_client, rollups):
    response = operator_client.get("/admin/metrics/providerrollup/?provider=openai&resolution__exact=60")
    html = response.content.decode()
    assert response.status_code == 200 and "model-of-org-a" in html and "model-of-org-b" in html


def test_org_owner_cannot_see_them(alice_client, rollups):
    response = alice_client.get("/admin/metrics/requestrollup/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
