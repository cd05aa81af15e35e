"""The usage page: the caller's org only, server-rendered SVG charts, HTMX refresh."""

from datetime import UTC, datetime, timedelta

import pytest

from tenants.context import tenant_context
from tests.metrics.conftest import put_calls, put_requests

pytestmark = pytest.mark.django_db


def _now():
    return datetime.now(UTC)


@pytest.fixture
def usage_data(org_a, org_b):
    now = _now()
    with tenant_context(org_a):
        put_requests(org_a.id, [(now - timedelta(minutes=m), "/org-a-only/", 40 + m) for m in range(7)])
        put_calls(org_a.id, [(now - timedelta(minutes=3), "openai", "gpt-4o-mini", "ok", 900, 1000, 500, 0.0123)])
    with tenant_context(org_b):
        put_requests(org_b.id, [(now - timedelta(minutes=1), "/org-b-only/", 5)] * 1234)
        put_calls(org_b.id, [(now - timedelta(minutes=2), "gemini", "gemini-2.5-flash", "ok", 700, 1, 1, 99.0)])


def test_owner_sees_charts_and_numbers_of_their_org_only(alice_client, usage_data):
    response = alice_client.get("/usage/?window=1h")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-total-requests>7<' in html
    assert "/org-a-only/" in html and "/org-b-only/" not in html
    assert "gemini" not in html and "$99" not in html
    assert html.count("<svg") >= 6 and '<title id="chart-request-latency-title">Request latency</title>' in html
    assert "<desc id=\"chart-calls-desc\">" in html and "Data table" in html


def test_a_member_sees_usage_too(bob_client, usage_data):
    assert bob_client.get("/usage/").status_code == 200


def test_charlie_sees_only_org_b(charlie_client, usage_data):
    html = charlie_client.get("/usage/?window=1h").content.decode()
    assert "data-total-requests>1,234<" in html
    assert "/org-a-only/" not in html and "openai" not in html


def test_charlie_gets_404_asking_for_org_a(charlie_client, org_a, usage_data):
    assert charlie_client.get("/usage/", headers={"X-Org-Id": str(org_a.id)}).status_code == 404


def test_htmx_refresh_returns_only_the_panels(alice_client, usage_data):
    response = alice_client.get("/usage/?window=24h", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<div id="usage-panels"') and 'hx-trigger="every 30s"' in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_full_page_has_the_same_panels(alice_client, usage_data):
    html = alice_client.get("/usage/?window=24h").content.decode()
    assert "<html" in html and 'id="usage-panels"' in html and 'aria-current="page"' in html


def test_an_unknown_window_is_400_with_a_message(alice_client, usage_data):
    response = alice_client.get("/usage/?window=5y")
    assert response.status_code == 400
    assert "window must be one of" in response.content.decode()


def test_an_unknown_window_asked_by_htmx_is_a_422_it_swaps_in(alice_client, usage_data):
    response = alice_client.get("/usage/?window=5y", headers={"HX-Request": "true"})
    assert response.status_code == 422 and "window must be one of" in response.content.decode()


def test_anonymous_is_sent_to_log_in(client):
    assert client.get("/usage/").status_code == 302


def test_empty_org_shows_empty_charts(alice_client):
    html = alice_client.get("/usage/").content.decode()
    assert "No data in this window yet." in html


def test_nav_has_usage_for_members_and_audit_for_admins_only(alice_client, bob_client):
    assert 'href="/usage/"' in bob_client.get("/usage/").content.decode()
    assert 'href="/audit/"' not in bob_client.get("/usage/").content.decode()
    assert 'href="/audit/"' in alice_client.get("/usage/").content.decode()
