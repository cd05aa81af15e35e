"""Every request and provider call is recorded: route template, org, status, latency, class."""

import inspect
import time

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from metrics.buffer import MetricsBuffer, set_buffer
from metrics.models import ProviderCallMetric, RequestMetric
from metrics.services import metrics_flush, overhead_observe, provider_call_record
from tenants.context import tenant_context
from tenants.models import Membership
from tests.factories import api_token_for

pytestmark = pytest.mark.django_db


def _rows(org):
    metrics_flush()
    with tenant_context(org):
        return list(RequestMetric.objects.order_by("id").values("route", "method", "status", "error_class", "latency_ms", "org_id"))


def test_a_request_is_stored_with_its_route_template_not_its_path(alice_client, org_a, bob):
    with tenant_context(org_a):
        membership = Membership.objects.get(user=bob)
    alice_client.patch(f"/api/v1/members/{membership.id}/", {"role": "admin"}, content_type="application/json")
    [row] = [r for r in _rows(org_a) if r["method"] == "PATCH"]
    assert row["route"] == "/api/v1/members/<int:membership_id>/"
    assert str(membership.id) not in row["route"]
    assert row["status"] == 200 and row["error_class"] == "" and row["org_id"] == org_a.id
    assert row["latency_ms"] > 0


def test_an_unknown_path_is_recorded_as_unmatched(alice_client, org_a):
    alice_client.get("/no/such/page/12345/")
    [row] = _rows(org_a)
    assert row["route"] == "<unmatched>" and row["status"] == 404 and row["error_class"] == "dac_validation"


def test_a_forbidden_page_is_a_dac_auth_error(bob_client, org_a):
    bob_client.get("/audit/")
    [row] = _rows(org_a)
    assert (row["route"], row["status"], row["error_class"]) == ("/audit/", 403, "dac_auth")


def test_api_token_requests_are_recorded_for_the_tokens_org(org_a, org_b):
    token = api_token_for(org_b, "ci")
    Client(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/members/")
    assert _rows(org_a) == []
    [row] = _rows(org_b)
    assert row["route"] == "/api/v1/members/" and row["status"] == 200


def test_gateway_requests_are_recorded_for_the_tokens_org(asgi_server, org_a, org_b):
    """They reached Prometheus but not the org's usage: the gateway authenticates by itself and
    left the request without its org."""
    import httpx

    token = api_token_for(org_b, "ci")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"model": "demo/demo-1", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers=headers, timeout=20).status_code == 200
    assert httpx.get(f"{asgi_server.url}/v1/models", headers=headers, timeout=20).status_code == 200
    assert _rows(org_a) == []
    assert {(row["route"], row["status"]) for row in _rows(org_b)} == {("/v1/chat/completions", 200), ("/v1/models", 200)}


def test_requests_without_an_org_reach_prometheus_only(client, org_a):
    labels = {"method": "GET", "route": "/login/", "status": "200"}
    before = REGISTRY.get_sample_value("dac_http_requests_total", labels) or 0
    client.get("/login/")
    assert REGISTRY.get_sample_value("dac_http_requests_total", labels) == before + 1
    assert _rows(org_a) == []


def test_a_request_refused_before_url_resolution_still_gets_its_route(alice_client, org_a):
    labels = {"source": "request", "error_class": "dac_validation"}
    counted = {"method": "GET", "route": "/api/v1/members/", "status": "400"}
    before = REGISTRY.get_sample_value("dac_http_requests_total", counted) or 0
    errors_before = REGISTRY.get_sample_value("dac_errors_total", labels) or 0
    assert alice_client.get("/api/v1/members/", headers={"X-Org-Id": "abc"}).status_code == 400
    assert REGISTRY.get_sample_value("dac_http_requests_total", counted) == before + 1
    assert REGISTRY.get_sample_value("dac_errors_total", labels) == errors_before + 1


def test_provider_call_record_keeps_the_pipelines_signature():
    params = inspect.signature(provider_call_record).parameters
    assert list(params) == ["org_id", "provider", "model", "outcome", "latency_ms", "first_token_ms", "input_tokens", "output_tokens", "streamed"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())


def test_provider_calls_are_stored_with_an_estimated_cost(org_a):
    with tenant_context(org_a):
        provider_call_record(org_id=org_a.id, provider="openai", model="gpt-4o-mini-2024-07-18", outcome="ok", latency_ms=812.5,
                             first_token_ms=120.0, input_tokens=1000, output_tokens=2000, streamed=True)
        provider_call_record(org_id=org_a.id, provider="demo", model="demo-1", outcome="ok", latency_ms=5,
                             first_token_ms=None, input_tokens=10_000, output_tokens=10_000, streamed=False)
        provider_call_record(org_id=org_a.id, provider="perplexity", model="sonar", outcome="timeout", latency_ms=30_000,
                             first_token_ms=None, input_tokens=None, output_tokens=None, streamed=True)
        metrics_flush()
        rows = {r.provider: r for r in ProviderCallMetric.objects.all()}
    assert rows["openai"].cost_usd == pytest.approx((1000 * 0.15 + 2000 * 0.60) / 1_000_000)
    assert rows["openai"].first_token_ms == 120.0 and rows["openai"].streamed
    assert rows["demo"].cost_usd == 0
    assert rows["perplexity"].outcome == "timeout" and rows["perplexity"].cost_usd == 0


def test_an_unknown_outcome_is_stored_as_unavailable(org_a):
    with tenant_context(org_a):
        provider_call_record(org_id=org_a.id, provider="openai", model="x", outcome="exploded", latency_ms=1,
                             first_token_ms=None, input_tokens=None, output_tokens=None, streamed=False)
        metrics_flush()
        assert ProviderCallMetric.objects.get().outcome == "unavailable"


def test_a_model_name_postgresql_cannot_store_does_not_drop_the_flush(org_a):
    """U+0000 (refused by PostgreSQL: the org's rows were dropped) and a lone surrogate (not
    encodable: every org's rows were dropped) in a model name become U+FFFD."""
    with tenant_context(org_a):
        for model in ("gpt\x00x", "gpt\ud800", "gpt-4o"):
            provider_call_record(org_id=org_a.id, provider="openai", model=model, outcome="ok", latency_ms=1,
                                 first_token_ms=None, input_tokens=None, output_tokens=None, streamed=False)
        assert metrics_flush() == 3
        assert sorted(ProviderCallMetric.objects.values_list("model", flat=True)) == ["gpt-4o", "gpt\ufffd", "gpt\ufffdx"]


def test_unknown_models_take_the_default_price_and_the_table_can_be_extended(org_a, settings):
    from metrics.prices import estimate_cost_usd

    settings.DAC_MODEL_PRICE_DEFAULT = (2.0, 4.0)
    assert estimate_cost_usd(provider="openrouter", model="someone/new-model", input_tokens=1_000_000, output_tokens=0) == 2.0
    assert estimate_cost_usd(provider="openrouter", model="openai/gpt-4o-mini", input_tokens=1_000_000, output_tokens=0) == 0.15
    assert estimate_cost_usd(provider="openai_compatible", model="gpt-4o", input_tokens=1_000_000, output_tokens=1_000_000) == 0


def test_overhead_observe_feeds_the_overhead_histogram():
    before = REGISTRY.get_sample_value("dac_overhead_seconds_count") or 0
    overhead_observe(3.5)
    assert REGISTRY.get_sample_value("dac_overhead_seconds_count") == before + 1


def test_the_buffer_writes_by_itself_when_full(org_a, settings):
    settings.DAC_METRICS_FLUSH_ROWS = 3
    buffer = MetricsBuffer(background=False)
    set_buffer(buffer)
    with tenant_context(org_a):
        for _ in range(3):
            provider_call_record(org_id=org_a.id, provider="demo", model="demo-1", outcome="ok", latency_ms=1,
                                 first_token_ms=None, input_tokens=1, output_tokens=1, streamed=False)
        assert len(buffer) == 0
        assert ProviderCallMetric.objects.count() == 3


def test_a_full_buffer_drops_and_counts_instead_of_growing(org_a, settings):
    settings.DAC_METRICS_FLUSH_ROWS = 1000
    settings.DAC_METRICS_BUFFER_MAX_ROWS = 2
    buffer = MetricsBuffer(background=False)
    set_buffer(buffer)
    before = REGISTRY.get_sample_value("dac_metrics_rows_dropped_total") or 0
    for _ in range(5):
        provider_call_record(org_id=org_a.id, provider="demo", model="demo-1", outcome="ok", latency_ms=1,
                             first_token_ms=None, input_tokens=1, output_tokens=1, streamed=False)
    assert len(buffer) == 2 and buffer.dropped == 3
    assert REGISTRY.get_sample_value("dac_metrics_rows_dropped_total") == before + 3


def test_storage_can_be_switched_off(org_a, settings):
    settings.DAC_METRICS_STORE = False
    provider_call_record(org_id=org_a.id, provider="demo", model="demo-1", outcome="ok", latency_ms=1,
                         first_token_ms=None, input_tokens=1, output_tokens=1, streamed=False)
    metrics_flush()
    with tenant_context(org_a):
        assert not ProviderCallMetric.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_flushes_within_its_interval(org_a, settings):
    settings.DAC_METRICS_FLUSH_SECONDS = 0.05
    buffer = MetricsBuffer(background=True)
    set_buffer(buffer)
    provider_call_record(org_id=org_a.id, provider="demo", model="demo-1", outcome="ok", latency_ms=1,
                         first_token_ms=None, input_tokens=1, output_tokens=1, streamed=False)
    deadline = time.monotonic() + 5
    count = 0
    while time.monotonic() < deadline and not count:
        time.sleep(0.05)
        with tenant_context(org_a):
            count = ProviderCallMetric.objects.count()
    assert count == 1 and len(buffer) == 0
