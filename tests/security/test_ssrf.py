"""SSRF through a provider key's base_url: every way of spelling a private, loopback,
link-local or otherwise internal address is refused when the key is saved (page and API) and
again before each call, unless the operator set DAC_ALLOW_PRIVATE_BASE_URLS. No lookup here
needs the network: every host is an address literal or a name /etc/hosts answers."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.services import Actor
from dac.errors import ValidationFailed
from providers.models import ProviderKey
from providers.services.keys import provider_key_add
from providers.urlsafety import validate_base_url
from tenants.context import tenant_context
from tests.fakes import FakeProvider
from threads.models import Thread

INTERNAL = [
    "http://127.0.0.1:11434/v1",
    "http://127.1/v1",  # short form of 127.0.0.1
    "http://2130706433/v1",  # decimal 127.0.0.1
    "http://0177.0.0.1/v1",  # octal
    "http://0x7f.0.0.1/v1",  # hex
    "http://0x7f000001/v1",
    "http://0/v1",  # 0.0.0.0
    "http://0.0.0.0:8000/v1",
    "http://localhost:8000/v1",  # a name that resolves to loopback
    "http://LOCALHOST./v1",  # case and a trailing dot
    "http://[::1]:8000/v1",  # IPv6 loopback
    "http://[::]/v1",
    "http://[::ffff:127.0.0.1]/v1",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/v1",
    "http://[::ffff:169.254.169.254]/v1",
    "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
    "http://[fe80::1]/v1",  # IPv6 link-local
    "http://10.0.0.1/v1",
    "http://172.16.0.1/v1",
    "http://192.168.1.1/v1",
    "http://100.64.0.1/v1",  # carrier-grade NAT: not global
    "http://[fd00::1]/v1",  # IPv6 unique local
    "http://[64:ff9b::a00:1]/v1",  # 10.0.0.1 through a NAT64 gateway
    "http://[2002:a00:1::1]/v1",  # 6to4 around 10.0.0.1
    "http://224.0.0.1/v1",  # multicast
    "http://[2001:db8::1]/v1",  # documentation range
    "https://192.0.2.10/v1",  # documentation range
]
MALFORMED = ["ftp://example.com/v1", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "http:///v1", "javascript:alert(1)",
             "http://user:secret@93.184.216.34/v1", "//93.184.216.34/v1"]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_are_refused(url, settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
    with pytest.raises(ValidationFailed) as refused:
        validate_base_url(url)
    # A name may also fail to resolve here (no DNS): refused either way, never fetched.
    allowed = ({"base_url": "private_address"}, {"base_url": "unresolvable"}) if "localhost" in url.lower() else ({"base_url": "private_address"},)
    assert refused.value.detail in allowed


@pytest.mark.parametrize("url", MALFORMED)
def test_other_schemes_credentials_and_hostless_urls_are_refused(url, settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True  # refused even when private addresses are allowed
    with pytest.raises(ValidationFailed):
        validate_base_url(url)


def test_a_public_address_passes_and_the_operator_switch_allows_a_local_server(settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
    assert validate_base_url("https://93.184.216.34/v1/") == "https://93.184.216.34/v1"
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
    assert validate_base_url("http://localhost:11434/v1") == "http://localhost:11434/v1"


@pytest.mark.django_db
def test_the_settings_page_and_the_api_refuse_an_internal_base_url_and_store_nothing(alice_client, org_a, settings):
    settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
    for url in ("http://2130706433/v1", "http://[::ffff:127.0.0.1]/v1", "http://169.254.169.254/"):
        api = alice_client.post("/api/v1/provider-keys/", {"provider": "openai_compatible", "api_key": "sk-ssrf-0123456789", "base_url": url}, content_type="application/json")
        assert api.status_code == 400 and api.json()["error"]["detail"] == {"base_url": "private_address"}, api.content
        page = alice_client.post("/settings/providers/openai_compatible/keys/", {"api_key": "sk-ssrf-0123456789", "base_url": url}, headers={"HX-Request": "true"})
        assert page.status_code == 422 and b"private" in page.content
    with tenant_context(org_a):
        assert not ProviderKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_key_saved_while_allowed_is_refused_at_call_time_once_the_switch_is_off(org_a, alice, settings):
    """The check runs again before each call (a DNS answer can change after saving): nothing
    reaches the internal server."""
    fake = FakeProvider("openai").start()
    try:
        settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
        with tenant_context(org_a):
            provider_key_add(org_id=org_a.id, provider="openai", api_key="sk-ssrf-0123456789abcdef", base_url=fake.base_url, actor=Actor.system())
            thread = Thread.objects.create(org=org_a, title="t")
        settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
        client = Client()
        client.force_login(alice)
        response = client.post(f"/api/v1/threads/{thread.pk}/messages/", {"content": "write a python function"}, content_type="application/json")
        assert response.status_code == 502 and response.json()["error"]["code"] == "bad_request"
        assert "private" in response.json()["error"]["message"]
        with tenant_context(org_a):
            key = ProviderKey.objects.get()
        test = client.post(f"/api/v1/provider-keys/{key.pk}/test/")
        assert test.status_code == 200 and test.json()["ok"] is False
        assert fake.requests == []
    finally:
        fake.close()


@pytest.mark.django_db(transaction=True)
def test_a_host_that_answers_the_check_with_a_public_address_and_the_connection_with_loopback_is_not_reached(
        org_a, alice, settings, monkeypatch):
    """DNS rebinding: the base URL's check resolved the host to a public address, the connection
    resolved it again (to 127.0.0.1) and was made, since only the check looked at addresses."""
    import socket
    from types import SimpleNamespace

    from providers import urlsafety

    fake = FakeProvider("openai_compatible").start()
    try:
        url = f"http://localhost:{fake.port}/v1"  # /etc/hosts: 127.0.0.1
        settings.DAC_ALLOW_PRIVATE_BASE_URLS = True
        with tenant_context(org_a):
            provider_key_add(org_id=org_a.id, provider="openai_compatible", api_key="sk-ssrf-0123456789abcdef", base_url=url,
                             actor=Actor.system())
            thread = Thread.objects.create(org=org_a, title="t")
        settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
        public = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", fake.port))]
        monkeypatch.setattr(urlsafety, "socket", SimpleNamespace(  # the attacker's DNS, as the check asks it
            getaddrinfo=lambda *args, **kwargs: public, IPPROTO_TCP=socket.IPPROTO_TCP, gaierror=socket.gaierror))
        client = Client()
        client.force_login(alice)
        response = client.post(f"/api/v1/threads/{thread.pk}/messages/", {"content": "hello"}, content_type="application/json")
        assert response.status_code == 502 and response.json()["error"]["code"] == "bad_request", response.content
        message = response.json()["error"]["message"]
        assert "resolves to" in message and "127.0.0.1" in message and "which may not be called" in message
        with tenant_context(org_a):
            key = ProviderKey.objects.get()
        test = client.post(f"/api/v1/provider-keys/{key.pk}/test/")
        assert test.status_code == 200 and test.json()["ok"] is False  # the key test connects to the address checked, too
        assert fake.requests == []
    finally:
        fake.close()


def test_an_adapter_not_made_for_an_orgs_base_url_connects_to_local_servers(settings):
    """The address check is for an org's own base URL (`check_addresses`): adapters driven
    directly (provider checks, commands) reach a local server with the switch off."""
    import asyncio

    from providers.adapters import get_adapter

    settings.DAC_ALLOW_PRIVATE_BASE_URLS = False
    with FakeProvider("openai") as local:
        adapter = get_adapter("openai", api_key="sk-ssrf-0123456789", base_url=local.base_url)
        result = asyncio.run(adapter.complete(messages=[{"role": "user", "content": "hi"}], model="m", timeout=5))
    assert result.text and len(local.requests) == 1


def test_a_redirect_to_an_internal_address_is_not_followed():
    """A base_url that passed the check answers 307 to an internal server: not followed."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from providers.adapters import ProviderError, get_adapter

    with FakeProvider("openai") as internal:
        class Redirect(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.send_response(307)
                self.send_header("Location", f"{internal.base_url}/chat/completions")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            adapter = get_adapter("openai", api_key="sk-ssrf-0123456789", base_url=f"http://127.0.0.1:{server.server_port}/v1")
            with pytest.raises(ProviderError):
                asyncio.run(adapter.complete(messages=[{"role": "user", "content": "hi"}], model="m", timeout=5))
        finally:
            server.shutdown()
        assert internal.requests == []
