"""The usage API: same numbers as the page, the caller's org only, filters, errors in shape."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from tenants.context import tenant_context
from tests.assertions import assert_error_shape
from tests.factories import api_token_for
from tests.metrics.conftest import put_calls, put_requests

pytestmark = pytest.mark.django_db




@pytest.fixture
def data(org_a, org_b):
    now = datetime.now(UTC)
    with tenant_context(org_a):
        put_requests(org_a.id, [(now - timedelta(minutes=2), "/api/v1/members/", 12), (now - timedelta(minutes=3), "/threads/", 30, 500, "dac_internal")])
        put_calls(org_a.id, [
            (now - timedelta(minutes=4), "openai", "gpt-4o-mini", "ok", 900, 10, 20, 0.001),
            (now - timedelta(minutes=5), "perplexity", "sonar", "rate_limited", 300, None, None, 0.0),
        ])
    with tenant_context(org_b):
        put_requests(org_b.id, [(now - timedelta(minutes=2), "/b/", 1)] * 50)


@pytest.fixture
def token_a(org_a):
    return api_token_for(org_a, "ci")


def _bearer(token):
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_summary_counts_only_the_callers_org(alice_client, data):
    body = alice_client.get("/api/v1/usage/summary/?window=1h").json()
    assert body["requests"]["count"] == 2 and body["requests"]["errors"] == 1
    assert body["provider_calls"]["count"] == 2 and body["provider_calls"]["cost_usd"] == 0.001


def test_an_api_token_reads_usage(token_a, data):
    body = _bearer(token_a).get("/api/v1/usage/paths/?window=24h").json()
    assert {r["route"] for r in body["results"]} == {"/api/v1/members/", "/threads/"}
    assert all({"p50_ms", "p95_ms", "p99_ms", "count"} <= set(r) for r in body["results"])


def test_filters_narrow_the_numbers(alice_client, data):
    assert alice_client.get("/api/v1/usage/providers/?provider=openai").json()["results"][0]["provider"] == "openai"
    assert len(alice_client.get("/api/v1/usage/providers/?provider=openai").json()["results"]) == 1
    assert alice_client.get("/api/v1/usage/summary/?route=/threads/").json()["requests"]["count"] == 1
    assert alice_client.get("/api/v1/usage/summary/?error_class=dac_internal").json()["requests"]["count"] == 1
    assert alice_client.get("/api/v1/usage/summary/?outcome=rate_limited").json()["provider_calls"]["count"] == 1


def test_errors_by_class(alice_client, data):
    body = alice_client.get("/api/v1/usage/errors/?window=7d").json()
    assert body["requests"] == {"dac_internal": 1} and body["provider_calls"] == {"rate_limited": 1}


def test_timeseries_has_a_point_per_step(alice_client, data):
    body = alice_client.get("/api/v1/usage/timeseries/?window=1h").json()
    assert body["step_seconds"] == 300 and 12 <= len(body["points"]) <= 13
    assert sum(p["requests"]["count"] for p in body["points"]) == 2
    assert body["providers"] == ["openai", "perplexity"]


@pytest.mark.parametrize("query", ["window=5y", "outcome=exploded", "error_class=oops", "method=BREW", "route=" + "x" * 300])
def test_bad_filters_are_400_in_the_error_shape(alice_client, data, query):
    assert_error_shape(alice_client.get(f"/api/v1/usage/summary/?{query}"), 400, "validation_error")


def test_unauthenticated_is_401(client):
    assert_error_shape(client.get("/api/v1/usage/summary/"), 401)


def test_charlie_gets_404_for_org_a(charlie_client, org_a, data):
    assert_error_shape(charlie_client.get("/api/v1/usage/summary/", headers={"X-Org-Id": str(org_a.id)}), 404)


def test_charlie_sees_org_bs_numbers_not_org_as(charlie_client, data):
    body = charlie_client.get("/api/v1/usage/summary/?window=1h").json()
    assert body["requests"]["count"] == 50 and body["provider_calls"]["count"] == 0
