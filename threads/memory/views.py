"""The /memory/ page: search the org's memory, remove a message from it, and (admins) settings."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from audit.services import Actor
from dac.errors import ApplicationError, NotFound
from tenants.decorators import org_admin_required, org_member_required
from threads.memory import config
from threads.memory.selectors import memory_search, memory_status
from threads.memory.services import forget_message, memory_settings_update
from threads.models import MemorySettings

TEMPLATE = "threads/memory/memory.html"


def _search_url(query: str) -> str:
    from urllib.parse import urlencode

    url = reverse("memory:search")
    return f"{url}?{urlencode({'q': query})}" if query else url


@require_GET
@org_member_required
@vary_on_headers("HX-Request")
def memory_search_page(request: HttpRequest) -> HttpResponse:
    org_id = request.org_access.org_id
    query = request.GET.get("q", "")[:1000]
    search, error = None, ""
    if query.strip():
        try:
            search = memory_search(org_id=org_id, query=query)
        except ApplicationError as exc:
            error = exc.message
    context = {
        "q": query,
        "search": search,
        "error": error,
        "status": memory_status(org_id=org_id),
        "can_manage": request.org_access.is_admin,
        "embedding_choices": MemorySettings.Embeddings.choices,
        "max_top_k": config.MAX_TOP_K,
    }
    if request.htmx:
        return render(request, f"{TEMPLATE}#results", context)
    return render(request, TEMPLATE, context)


@require_POST
@org_member_required
def memory_forget(request: HttpRequest, message_id: int) -> HttpResponse:
    try:
        forget_message(org_id=request.org_access.org_id, message_id=message_id, actor=Actor.of_request(request), user=request.user)
    except NotFound:
        raise Http404("No such message.") from None
    if request.htmx:
        return render(request, f"{TEMPLATE}#forgotten", {"message_id": message_id})
    flash.success(request, "Removed from memory: it will not be recalled or found again.")
    return redirect(_search_url(request.POST.get("q", "")[:1000]))


def _optional_number(raw: str, kind: type):
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        return raw  # the service rejects it with a message naming the field


@require_POST
@org_admin_required
def memory_settings_save(request: HttpRequest) -> HttpResponse:
    try:
        memory_settings_update(
            org_id=request.org_access.org_id,
            actor=Actor.of_request(request),
            enabled=request.POST.get("enabled") == "on",
            top_k=_optional_number(request.POST.get("top_k", ""), int),
            min_score=_optional_number(request.POST.get("min_score", ""), float),
            embeddings=request.POST.get("embeddings", ""),
            embedding_model=request.POST.get("embedding_model", ""),
        )
    except ApplicationError as exc:
        flash.error(request, exc.message)
    else:
        flash.success(request, "Memory settings saved.")
    return redirect("memory:search")
