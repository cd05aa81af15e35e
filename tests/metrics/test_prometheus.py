"""/metrics: Prometheus text for operators only (bearer token or address allow-list)."""

import ipaddress
from datetime import UTC, datetime

import pytest
from django.test import Client

from metrics import prom

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789abcdef"


def _get(remote="127.0.0.1", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(REMOTE_ADDR=remote, headers=headers).get("/metrics")


def test_localhost_may_scrape_by_default():
    response = _get()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    for name in ("dac_http_request_duration_seconds", "dac_provider_call_duration_seconds", "dac_overhead_seconds", "dac_errors_total"):
        assert f"# TYPE {name}" in body


def test_ipv6_loopback_and_mapped_ipv4_are_allowed():
    assert _get("::1").status_code == 200
    assert _get("::ffff:127.0.0.1").status_code == 200


def test_other_addresses_get_404():
    assert _get("203.0.113.9").status_code == 404


def test_a_signed_in_org_owner_is_not_an_operator(alice):
    client = Client(REMOTE_ADDR="203.0.113.9")
    client.force_login(alice)
    assert client.get("/metrics").status_code == 404


def test_the_right_token_works_from_anywhere(settings):
    settings.DAC_METRICS_TOKEN = TOKEN
    assert _get("203.0.113.9", token=TOKEN).status_code == 200


def test_a_wrong_token_is_403_even_from_an_allowed_address(settings):
    settings.DAC_METRICS_TOKEN = TOKEN
    assert _get("127.0.0.1", token=TOKEN + "x").status_code == 403
    assert _get("203.0.113.9", token="nope").status_code == 403


def test_a_token_is_refused_when_none_is_configured(settings):
    settings.DAC_METRICS_TOKEN = ""
    assert _get("203.0.113.9", token="anything").status_code == 403


def test_the_allow_list_takes_networks(settings):
    settings.DAC_METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("10.0.0.0/8"),)
    assert _get("10.20.30.40").status_code == 200
    assert _get("127.0.0.1").status_code == 404


def test_quota_store_state_is_exported_when_the_quota_module_provides_it(monkeypatch):
    state = {"backend": "postgres", "degraded": True, "since": datetime(2031, 1, 1, tzinfo=UTC), "last_error": "Connection refused"}
    monkeypatch.setattr(prom, "_quota_state_fn", lambda: lambda: state)
    body = _get().content.decode()
    assert 'dac_quota_store_info{backend="postgres"} 1.0' in body
    assert "dac_quota_store_degraded 1.0" in body
    assert "dac_quota_store_since_timestamp_seconds" in body
    assert "Connection refused" not in body  # free text never becomes a label


def test_no_quota_gauge_without_the_quota_module(monkeypatch):
    monkeypatch.setattr(prom, "_quota_state_fn", lambda: None)
    assert "dac_quota_store" not in _get().content.decode()


def test_a_failing_quota_store_does_not_break_the_scrape(monkeypatch):
    def broken():
        raise RuntimeError("redis gone")

    monkeypatch.setattr(prom, "_quota_state_fn", lambda: broken)
    response = _get()
    assert response.status_code == 200 and "dac_quota_store_up 0.0" in response.content.decode()
