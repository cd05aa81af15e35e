"""The public demo: chat without an account, in a throw-away sandbox bound to the session.

A first visit to /demo creates an org (is_demo, expires in a day) owned by a throw-away user
with no usable password, signs the visitor in as that user, caps the org at strict daily limits
and opens a first thread; the demo provider answers because the org has no keys. The same
session comes back to the same sandbox until it expires, and `manage.py purge_demo` deletes
expired sandboxes. Creation is throttled per client address, so a bot cannot mint thousands.

Service and views live together here because the demo is one small feature with one page.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth import login, logout
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit.services import Actor
from dac.errors import ApplicationError, RateLimited
from providers.services.limits import quota_limit_set
from tenants.context import tenant_context
from tenants.middleware import SESSION_ORG_KEY
from tenants.models import Membership, Organization, User
from tenants.services import org_create, user_create

logger = logging.getLogger(__name__)

SANDBOX_NAME = "Demo sandbox"
LIFETIME = timedelta(days=1)
REQUESTS_PER_DAY = 30
TOKENS_PER_DAY = 20_000
CREATIONS_PER_HOUR = 10  # per client address
VISITOR_DOMAIN = "demo.invalid"  # RFC 2606: can never be a real mailbox
SESSION_KEY = "dac_demo"
THROTTLE_KEY = "dac:demo:created"  # + address + hour; tests point it elsewhere
ACTOR = Actor.system("demo")


class DemoThrottled(RateLimited):
    code = "demo_throttled"


class DemoUnavailable(ApplicationError):
    status = 503
    code = "demo_unavailable"


@dataclass(frozen=True)
class Sandbox:
    org: Organization
    user: User
    thread_id: int


@dataclass(frozen=True)
class Purged:
    orgs: int
    users: int
    failed: list[tuple[int, str]]


# --- services ---


def sandbox_create(*, client_ip: str, now: datetime | None = None) -> Sandbox:
    """A new sandbox: visitor user, demo org (owned by them), strict limits, a first thread."""
    from threads.services import thread_create

    _throttle(client_ip)
    now = now or timezone.now()
    with transaction.atomic():
        user = user_create(email=f"visitor-{secrets.token_hex(8)}@{VISITOR_DOMAIN}", password=None)
        org = org_create(name=SANDBOX_NAME, owner=user, actor=ACTOR, is_demo=True, expires_at=now + LIFETIME)
        with tenant_context(org):
            quota_limit_set(org_id=org.id, provider="", requests_per_day=REQUESTS_PER_DAY, tokens_per_day=TOKENS_PER_DAY, actor=ACTOR)
            thread = thread_create(org_id=org.id, created_by=user)
    return Sandbox(org=org, user=user, thread_id=thread.pk)


def _throttle(client_ip: str) -> None:
    """Fixed one-hour windows per address, counted in the shared cache (Redis).

    When the cache cannot count, creation is refused rather than left unlimited: the demo is
    the one page anyone on the internet can make write to the database."""
    now = time.time()
    window = int(now // 3600)
    key = f"{THROTTLE_KEY}:{client_ip or 'unknown'}:{window}"
    retry_after = max(1, math.ceil((window + 1) * 3600 - now))
    cache.add(key, 0, timeout=retry_after + 60)
    try:
        count = cache.incr(key)  # None when Redis is unreachable (IGNORE_EXCEPTIONS)
    except ValueError:  # evicted between add and incr: this is the window's first
        count = 1 if cache.add(key, 1, timeout=retry_after + 60) else cache.incr(key)
    if count is None:
        raise DemoUnavailable("The demo cannot start right now. Try again in a few minutes, or sign up: it is free.")
    if count > CREATIONS_PER_HOUR:
        raise DemoThrottled(
            "Too many demo sandboxes were started from your network in the last hour.",
            detail={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


def sandbox_is_current(*, org_id: int, now: datetime | None = None) -> bool:
    """Whether the org is a demo sandbox that has not expired (runs in the org's context)."""
    return Organization.objects.filter(pk=org_id, is_demo=True, expires_at__gt=now or timezone.now()).exists()


def sandbox_purge_expired(*, now: datetime | None = None) -> Purged:
    """Delete expired sandboxes (threads, messages, keys, limits cascade with the org) and the
    users that belonged to them and to no other org. Run under `operator_context`."""
    from threads.memory.services import forget_org

    now = now or timezone.now()
    orgs = users = 0
    failed: list[tuple[int, str]] = []
    expired = list(Organization.objects.filter(is_demo=True, expires_at__lt=now).order_by("pk").values_list("pk", flat=True))
    for org_id in expired:
        try:
            with transaction.atomic():
                member_ids = list(Membership.objects.filter(org_id=org_id).values_list("user_id", flat=True))
                Organization.objects.filter(pk=org_id).delete()
                orphans = User.objects.filter(pk__in=member_ids, memberships__isnull=True, is_staff=False, is_superuser=False)
                orphan_ids = list(orphans.values_list("pk", flat=True))
                User.objects.filter(pk__in=orphan_ids).delete()
        except (ProtectedError, IntegrityError) as exc:
            failed.append((org_id, str(exc.args[0]) if exc.args else exc.__class__.__name__))
            continue
        orgs += 1
        users += len(orphan_ids)
        try:
            forget_org(org_id=org_id)  # its memory points; never let memory fail the purge
        except Exception:
            logger.exception("purge_demo: could not forget the memory of org %s", org_id)
    return Purged(orgs=orgs, users=users, failed=failed)


def is_sandbox_request(request: HttpRequest) -> bool:
    """The request acts on a demo sandbox (one query; only used where it matters)."""
    access = getattr(request, "org_access", None)
    return access is not None and Organization.objects.filter(pk=access.org_id, is_demo=True).exists()


def not_in_sandbox(view, *, back: str):
    """Refuse actions that make no sense in a throw-away sandbox and could be abused from it
    (adding users with passwords, minting API tokens that outlive the visit); `back` is the
    URL name to return to. Applied in tenants/urls.py."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if is_sandbox_request(request):
            messages.error(
                request, "The demo sandbox cannot do that. Sign up for your own workspace to invite people and create API tokens."
            )
            return redirect(back)
        return view(request, *args, **kwargs)

    return wrapper


# --- views ---


def client_ip(request: HttpRequest) -> str:
    """The peer address as the ASGI server reports it (behind a proxy, uvicorn's
    --proxy-headers/--forwarded-allow-ips make this the real client)."""
    return (request.META.get("REMOTE_ADDR") or "")[:45]


def _session_marker(request: HttpRequest) -> dict | None:
    marker = request.session.get(SESSION_KEY)
    access = getattr(request, "org_access", None)
    if isinstance(marker, dict) and access is not None and marker.get("org_id") == access.org_id:
        return marker
    return None


def _latest_thread_id(request: HttpRequest) -> int:
    from threads.selectors import thread_list
    from threads.services import thread_create

    thread = thread_list().first()
    if thread is None:
        thread = thread_create(org_id=request.org_access.org_id, created_by=request.user)
    return thread.pk


@require_GET  # not HEAD: link checkers and prefetchers must not mint sandboxes
@never_cache
def demo(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        if _session_marker(request) is not None and sandbox_is_current(org_id=request.org_access.org_id):
            return redirect("threads:detail", thread_id=_latest_thread_id(request))
        if request.session.get(SESSION_KEY) is None:
            messages.info(request, "You are signed in, so there is no need for the demo: your own workspace is right here.")
            return redirect("threads:list")
        logout(request)  # this session's sandbox expired: start a fresh one
    try:
        sandbox = sandbox_create(client_ip=client_ip(request))
    except (DemoThrottled, DemoUnavailable) as exc:
        retry_after = exc.headers.get("Retry-After")
        response = render(
            request,
            "tenants/demo_unavailable.html",
            {
                "message": exc.message,
                "retry_at": timezone.now() + timedelta(seconds=int(retry_after)) if retry_after else None,
            },
            status=exc.status,
        )
        for name, value in exc.headers.items():
            response[name] = value
        return response
    login(request, sandbox.user, backend="django.contrib.auth.backends.ModelBackend")
    expires_at = sandbox.org.expires_at
    request.session[SESSION_ORG_KEY] = sandbox.org.id
    request.session[SESSION_KEY] = {
        "org_id": sandbox.org.id,
        "expires_at": expires_at.isoformat(),
        "expires_label": f"on {expires_at.day} {expires_at:%b at %H:%M} UTC",
        "requests_per_day": REQUESTS_PER_DAY,
    }
    return redirect("threads:detail", thread_id=sandbox.thread_id)
