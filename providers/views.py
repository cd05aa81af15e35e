from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from audit.services import Actor
from dac.errors import ApplicationError, NotFound
from providers import selectors
from providers.forms import ProviderKeyForm
from providers.services.keys import (
    CONFIGURABLE_PROVIDERS,
    provider_key_activate,
    provider_key_add,
    provider_key_delete,
    provider_key_get,
    provider_key_test,
)
from tenants.decorators import org_admin_required, org_member_required
from tenants.models import User
from tenants.services import agent_permission_set

PAGE = "providers/provider_settings.html"


def _page_context(request: HttpRequest, *, rejected: tuple[str, ProviderKeyForm] | None = None) -> dict:
    """`rejected` is (provider, its bound form): that card shows the errors and what was typed."""
    is_admin = request.org_access.is_admin
    providers = selectors.provider_settings_list(org_id=request.org_access.org_id)
    return {
        "cards": [(p, rejected[1] if rejected and rejected[0] == p.name else ProviderKeyForm()) for p in providers],
        "can_manage": is_admin,
        "permissions": selectors.member_permissions_list() if is_admin else [],
        "provider_names": CONFIGURABLE_PROVIDERS,
    }


@org_member_required
@vary_on_headers("HX-Request")
def provider_settings(request: HttpRequest) -> HttpResponse:
    return render(request, PAGE, _page_context(request))


def _card(request: HttpRequest, provider: str, *, form: ProviderKeyForm | None = None, status: int = 200, notice: str = "") -> HttpResponse:
    context = {
        "p": selectors.provider_settings_get(provider=provider, org_id=request.org_access.org_id),
        "can_manage": True,
        "form": form or ProviderKeyForm(),
        "notice": notice,
    }
    return render(request, f"{PAGE}#provider-card", context, status=status)


@require_POST
@org_admin_required
def provider_key_add_view(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in CONFIGURABLE_PROVIDERS:
        raise Http404("Unknown provider.")
    form = ProviderKeyForm(request.POST)
    if form.is_valid():
        try:
            key = provider_key_add(
                org_id=request.org_access.org_id,
                provider=provider,
                api_key=form.cleaned_data["api_key"],
                label=form.cleaned_data["label"],
                base_url=form.cleaned_data["base_url"],
                default_model=form.cleaned_data["default_model"],
                actor=Actor.user(request.user),
                created_by=request.user,
            )
        except ApplicationError as exc:
            field = next(iter(exc.detail), None)
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            notice = f"Key {key.masked} saved and active."
            if request.htmx:
                return _card(request, provider, notice=notice)
            messages.success(request, notice)
            return redirect("providers:settings")
    # 422 with the form again: htmx swaps it in (static/js/ui.js), a plain POST shows the page.
    if request.htmx:
        return _card(request, provider, form=form, status=422)
    return render(request, PAGE, _page_context(request, rejected=(provider, form)), status=422)


def _key_or_404(key_id: int):
    try:
        return provider_key_get(key_id=key_id)
    except NotFound:
        raise Http404("No such key.") from None


@require_POST
@org_admin_required
def provider_key_test_view(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _key_or_404(key_id)
    result = async_to_sync(provider_key_test)(key=key, actor=Actor.user(request.user))
    if request.htmx:
        return render(request, f"{PAGE}#key-row", {"key": key, "can_manage": True, "p": {"name": key.provider}})
    (messages.success if result.ok else messages.error)(request, f"{key.masked}: {result.message}")
    return redirect("providers:settings")


@require_POST
@org_admin_required
def provider_key_activate_view(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _key_or_404(key_id)
    provider_key_activate(key=key, actor=Actor.user(request.user))
    if request.htmx:
        return _card(request, key.provider, notice=f"{key.masked} is now the active key.")
    return redirect("providers:settings")


@require_POST
@org_admin_required
def provider_key_delete_view(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _key_or_404(key_id)
    provider, masked = key.provider, key.masked
    provider_key_delete(key=key, actor=Actor.user(request.user))
    if request.htmx:
        return _card(request, provider, notice=f"Key {masked} deleted.")
    messages.success(request, f"Key {masked} deleted.")
    return redirect("providers:settings")


@require_POST
@org_admin_required
def agent_permission_view(request: HttpRequest) -> HttpResponse:
    provider = request.POST.get("provider", "")
    if provider not in CONFIGURABLE_PROVIDERS:
        raise Http404("Unknown provider.")
    try:
        user = User.objects.get(pk=int(request.POST.get("user_id", "")))
    except (ValueError, User.DoesNotExist):
        raise Http404("No such member.") from None
    allowed = request.POST.get("allowed") == "on"
    try:
        agent_permission_set(org_id=request.org_access.org_id, user=user, provider=provider, allowed=allowed, actor=Actor.user(request.user))
    except NotFound:
        raise Http404("No such member.") from None
    if request.htmx:
        return HttpResponse(status=204)
    messages.success(request, f"{user.email} {'may' if allowed else 'may not'} use {provider}.")
    return redirect("providers:settings")
