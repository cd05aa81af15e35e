from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit.services import Actor
from dac.errors import ApplicationError
from routing import rules
from routing.services import org_routing, routing_settings_update
from tenants.decorators import org_admin_required, org_member_required


@org_member_required
def routing_settings(request: HttpRequest) -> HttpResponse:
    routing = org_routing()
    order = list(routing.rule_order or rules.RULE_NAMES)
    rows = [
        {
            "name": name,
            "position": index + 1,
            "provider": rules.RULE_PROVIDERS[name],
            "description": rules.RULE_DESCRIPTIONS[name],
            "model": routing.models.get(name) or rules.DEFAULT_MODELS[name],
            "enabled": name not in routing.disabled,
        }
        for index, name in enumerate(order)
    ]
    decision = None
    text = request.GET.get("text", "")
    if text:
        try:
            count = int(request.GET.get("message_count", "0") or 0)
        except ValueError:
            count = 0
        decision = rules.evaluate(text[:32_000], count, rule_order=routing.rule_order, disabled=routing.disabled, models=routing.models)
    context = {"rows": rows, "can_manage": request.org_access.is_admin, "decision": decision, "text": text, "count": request.GET.get("message_count", "0")}
    if request.htmx and text:
        return render(request, "routing/routing_settings.html#decision", context)
    return render(request, "routing/routing_settings.html", context)


@require_POST
@org_admin_required
def routing_settings_save(request: HttpRequest) -> HttpResponse:
    names = list(rules.RULE_NAMES)
    try:
        positions = {name: int(request.POST.get(f"position_{name}", "0")) for name in names}
    except ValueError:
        messages.error(request, "Positions must be numbers.")
        return redirect("routing:settings")
    order = sorted(names, key=lambda name: (positions[name], names.index(name)))
    disabled = [name for name in names if name != "default" and request.POST.get(f"enabled_{name}") != "on"]
    models = {name: request.POST.get(f"model_{name}", "").strip() or rules.DEFAULT_MODELS[name] for name in names}
    try:
        routing_settings_update(
            org_id=request.org_access.org_id, actor=Actor.of_request(request), rule_order=order, disabled_rules=disabled, models=models
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Routing saved.")
    return redirect("routing:settings")
