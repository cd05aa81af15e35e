"""The usage page (per org) and the Prometheus endpoint (operators only)."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from dac.errors import ValidationFailed
from metrics import charts, prom, selectors
from metrics.classify import ERROR_CLASS_LABELS
from tenants.decorators import org_member_required

PAGE = "metrics/usage.html"


def _label(t, window: str) -> str:
    return t.strftime("%b %d") if window == "7d" else t.strftime("%H:%M")


def usage_context(*, window: str) -> dict:
    query = selectors.usage_query(window=window)
    summary, series = selectors.usage_overview(query)
    points = series["points"]
    labels = [_label(p["t"], window) for p in points]
    providers = series["providers"]
    errors = selectors.usage_errors(query)
    step = {"1h": "5 minutes", "24h": "hour", "7d": "day (UTC)"}[window]
    error_items = [(ERROR_CLASS_LABELS.get(c, c), n) for c, n in sorted(errors["requests"].items(), key=lambda kv: -kv[1])]
    error_items += [
        (f"Provider call: {ERROR_CLASS_LABELS.get(c, c)}", n)
        for c, n in sorted(errors["provider_calls"].items(), key=lambda kv: -kv[1])
    ]
    chart_list = [
        charts.line_chart(
            id="chart-request-latency", title="Request latency", unit="ms", labels=labels,
            desc=f"p50, p95 and p99 of the time DAC took to answer requests, per {step}.",
            series=[(name, [p["requests"][f"{name}_ms"] for p in points]) for name in ("p50", "p95", "p99")],
        ),
        charts.line_chart(
            id="chart-provider-latency", title="Provider call latency", unit="ms", labels=labels,
            desc=f"p50, p95 and p99 of provider call durations (all outcomes), per {step}.",
            series=[(name, [p["provider_calls"][f"{name}_ms"] for p in points]) for name in ("p50", "p95", "p99")],
        ),
        charts.stacked_bars(
            id="chart-calls", title="Provider calls", unit="", labels=labels,
            desc=f"Calls to each provider per {step}.",
            series=[(name, [p["providers"].get(name, {}).get("count", 0) for p in points]) for name in providers],
        ),
        charts.stacked_bars(
            id="chart-tokens", title="Tokens", unit="", labels=labels,
            desc=f"Input plus output tokens reported by each provider per {step}.",
            series=[
                (name, [p["providers"].get(name, {}).get("input_tokens", 0) + p["providers"].get(name, {}).get("output_tokens", 0) for p in points])
                for name in providers
            ],
        ),
        charts.stacked_bars(
            id="chart-cost", title="Estimated cost", unit="$", labels=labels,
            desc=f"Estimated provider cost per {step}, from the model price table.",
            series=[(name, [p["providers"].get(name, {}).get("cost_usd", 0.0) for p in points]) for name in providers],
        ),
        charts.horizontal_bars(
            id="chart-errors", title="Errors by class", unit="",
            desc="Failed requests by error class (DAC's own and provider categories), then failed provider calls.",
            items=error_items,
        ),
    ]
    return {
        "window": window,
        "windows": [(key, label) for key, label in selectors.WINDOW_LABELS.items()],
        "window_label": selectors.WINDOW_LABELS[window],
        "summary": summary,
        "charts": chart_list,
        "paths": selectors.usage_by_path(query),
        "providers": selectors.usage_by_provider(query),
    }


@org_member_required
@vary_on_headers("HX-Request")
@never_cache
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    status = 200
    try:
        window = selectors.window_parse(request.GET.get("window"))
    except ValidationFailed as exc:
        window, status = selectors.DEFAULT_WINDOW, 422 if request.htmx else 400  # 422: htmx swaps it in
        request.window_error = exc.message
    context = usage_context(window=window)
    context["window_error"] = getattr(request, "window_error", "")
    template = f"{PAGE}#usage-panels" if request.htmx else PAGE
    return render(request, template, context, status=status)


def _client_allowed(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.DAC_METRICS_ALLOWED_NETWORKS)


def metrics_access(request: HttpRequest) -> int | None:
    """None when the caller may scrape; else the status to answer (403 bad token, 404 otherwise)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        expected = settings.DAC_METRICS_TOKEN
        given = header[len("Bearer "):].strip()
        if expected and hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return 403
    return None if _client_allowed(request) else 404


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    denied = metrics_access(request)
    if denied == 404:
        raise Http404
    if denied:
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    body, content_type = prom.exposition()
    return HttpResponse(body, content_type=content_type)
