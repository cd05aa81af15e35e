"""Browser-facing hardening: in production mode (a subprocess with production-like settings:
DEBUG off, real-looking secrets, DAC_HTTPS on) plain HTTP is redirected to HTTPS, HSTS is
sent, every cookie is Secure, the session cookie HttpOnly and SameSite; `manage.py check
--deploy` has nothing to say; every HTML page carries a Content-Security-Policy that allows
only our own scripts and no framing; and no template could need more (no inline handler, no
inline script)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client

from tests.routes import url_routes

ROOT = Path(__file__).resolve().parents[2]
HOST = "dac.example.com"


def _production_env(**extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    owner = settings.DATABASES["owner"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAC_", "DATABASE_", "DJANGO_", "SECURE_", "DB_", "QDRANT_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "dac.settings",
        "DAC_SKIP_DOTENV": "1",
        "DEBUG": "0",
        "SECRET_KEY": "k8Yw2-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "DAC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DAC_HTTPS": "true",
        "ALLOWED_HOSTS": HOST,
        "SECURE_SSL_REDIRECT": "true",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DATABASE_OWNER_URL": f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}",
        "DB_POOL": "false",
        "DAC_METRICS_STORE": "false",
        "QDRANT_PATH": "",
        **extra,
    })
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


# Run in the subprocess: requests through the real ASGI application (dac.asgi, both of its
# handlers: pages and the /v1/ gateway), as a browser and an API client would send them.
PROBE = """
import asyncio, json, os
import django
django.setup()
import httpx
from dac.asgi import application

HOST = "dac.example.com"
TOKEN = os.environ.get("PROBE_TOKEN", "")

def cookies(response):
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        attrs = [a.strip().lower() for a in header.split(";")[1:]]
        found[name] = {"secure": "secure" in attrs, "httponly": "httponly" in attrs,
                       "samesite": next((a.split("=", 1)[1].capitalize() for a in attrs if a.startswith("samesite=")), "")}
    return found

async def main():
    out = {}
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as plain, \
               httpx.AsyncClient(transport=transport, base_url=f"https://{HOST}") as tls:
        r = await plain.get("/login/")
        out["plain"] = [r.status_code, r.headers.get("location", "")]
        out["healthz"] = (await plain.get("/healthz")).status_code
        r = await tls.get("/login/")
        out["login"] = {"status": r.status_code, "headers": dict(r.headers), "cookies": cookies(r)}
        csrf = r.cookies.get("csrftoken")
        r = await tls.post("/signup/", data={"email": "%(email)s", "password": "a long and random passphrase 42",
                                             "org_name": "Prod check", "csrfmiddlewaretoken": csrf},
                           headers={"Referer": f"https://{HOST}/signup/"})
        out["signup"] = {"status": r.status_code, "location": r.headers.get("location", ""), "cookies": cookies(r)}
        r = await tls.get("/threads/")
        out["page"] = {"status": r.status_code, "headers": dict(r.headers)}
        r = await plain.get("/v1/models", headers={"Authorization": "Bearer dac_x_y"})
        out["gateway_plain"] = r.status_code
        r = await tls.get("/v1/models", headers={"Authorization": "Bearer dac_x_y"})
        out["gateway"] = {"status": r.status_code, "headers": dict(r.headers)}
    print(json.dumps(out))

asyncio.run(main())
"""


def _probe() -> dict:
    done = _run(["-c", PROBE % {"email": f"prod-{uuid.uuid4().hex[:8]}@example.com"}], _production_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_production_mode_redirects_to_https_and_sends_hsts_csp_and_secure_cookies():
    out = _probe()
    assert out["plain"] == [301, f"https://{HOST}/login/"]
    assert out["healthz"] == 200  # load balancers probe over plain HTTP
    headers = out["login"]["headers"]  # httpx: lower-case names
    assert out["login"]["status"] == 200
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    _assert_strict_csp(headers["content-security-policy"])
    assert "upgrade-insecure-requests" in headers["content-security-policy"]
    assert out["login"]["cookies"]["csrftoken"] == {"secure": True, "httponly": False, "samesite": "Lax"}
    assert out["signup"]["status"] == 302
    assert out["signup"]["cookies"]["sessionid"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert all(c["secure"] for c in out["signup"]["cookies"].values())
    assert out["page"]["status"] == 200 and "strict-transport-security" in out["page"]["headers"]
    _assert_strict_csp(out["page"]["headers"]["content-security-policy"])
    # The gateway answers API clients in JSON, behind the same policy.
    assert out["gateway"]["status"] == 401
    _assert_strict_csp(out["gateway"]["headers"]["content-security-policy"])


# Found here (issue 11): the /v1/ middleware stack had no SecurityMiddleware (no redirect, HSTS, nosniff).
@pytest.mark.django_db(transaction=True)
def test_production_gateway_is_as_strict_about_transport_as_the_pages():
    out = _probe()
    assert out["gateway_plain"] == 301
    assert out["gateway"]["headers"].get("strict-transport-security") == "max-age=31536000; includeSubDomains; preload"
    assert out["gateway"]["headers"].get("x-content-type-options") == "nosniff"


def _check_deploy() -> subprocess.CompletedProcess:
    return _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env())


def test_check_deploy_has_no_security_warning():
    done = _check_deploy()
    output = done.stdout + done.stderr
    assert "security.W" not in output and "security.E" not in output, output
    assert "ERRORS:" not in output, output


# Found here (issue 11): drf_spectacular.W001 (fixed with ENUM_NAME_OVERRIDES).
def test_check_deploy_is_clean():
    done = _check_deploy()
    assert done.returncode == 0 and "no issues" in done.stdout, done.stdout + done.stderr


def test_production_settings_refuse_insecure_secrets():
    for extra in ({"SECRET_KEY": "short"}, {"DAC_ENCRYPTION_KEYS": ""}, {"SECRET_KEY": "dac-insecure-development-key-do-not-use-in-production"}):
        done = _run(["manage.py", "check"], _production_env(**extra))
        assert done.returncode != 0 and "ImproperlyConfigured" in done.stderr, extra


# --- Content-Security-Policy on every page ---------------------------------------------------


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = words[1:]
    return parsed


def _assert_strict_csp(policy: str) -> None:
    directives = _directives(policy)
    script = directives.get("script-src", directives.get("default-src"))
    assert script == ["'self'"], policy  # our own files only: no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert directives.get("frame-ancestors") == ["'none'"], policy
    assert directives.get("object-src") == ["'none'"], policy
    assert directives.get("base-uri") in (["'self'"], ["'none'"]), policy


def _html_pages() -> list[str]:
    """Every route without a parameter, as a path."""
    return ["/" + route.replace("^", "").replace("$", "") for route, _ in url_routes() if "<" not in route and "(" not in route]


@pytest.mark.django_db
def test_every_html_page_carries_a_strict_content_security_policy(alice, org_a):
    from tenants.context import tenant_context
    from threads.models import Thread

    with tenant_context(org_a):
        thread = Thread.objects.create(org=org_a, title="csp")
    browser = Client()
    browser.force_login(alice)
    visitor = Client()
    pages = [*_html_pages(), f"/threads/{thread.pk}/"]
    checked, failures = 0, []
    for path in pages:
        for client in (browser, visitor):
            response = client.get(path)
            if not response.get("Content-Type", "").startswith("text/html"):
                continue
            checked += 1
            policy = response.get("Content-Security-Policy")
            if policy is None:
                failures.append(f"{path} ({response.status_code}): no Content-Security-Policy")
                continue
            try:
                _assert_strict_csp(policy)
            except AssertionError:
                failures.append(f"{path}: weak policy {policy}")
    assert checked > 20
    assert not failures, "\n".join(failures)


# --- templates that a strict policy can serve -------------------------------------------------

TEMPLATE_FILES = sorted(p for p in ROOT.glob("**/templates/**/*.html") if ".venv" not in p.parts and "node_modules" not in p.parts)
INLINE_HANDLER = re.compile(r"<[^>]*\s(on[a-z]+)\s*=", re.IGNORECASE | re.DOTALL)
HX_ON = re.compile(r"\shx-on[:\-]", re.IGNORECASE)  # htmx inline handlers: evaluated code, needs 'unsafe-eval'
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
JS_URL = re.compile(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def test_templates_have_no_inline_event_handlers_or_inline_scripts():
    assert len(TEMPLATE_FILES) > 20
    problems = []
    for path in TEMPLATE_FILES:
        text = path.read_text()
        where = path.relative_to(ROOT)
        problems += [f"{where}: inline handler {m.group(1)}=" for m in INLINE_HANDLER.finditer(text)]
        problems += [f"{where}: hx-on handler" for _ in HX_ON.finditer(text)]
        problems += [f"{where}: javascript: URL" for _ in JS_URL.finditer(text)]
        for attrs, body in SCRIPT.findall(text):
            if "application/json" in attrs.lower():
                continue  # data (json_script), never executed
            if body.strip() or "src=" not in attrs:
                problems.append(f"{where}: inline <script{attrs}> with code")
    assert not problems, "\n".join(problems)
