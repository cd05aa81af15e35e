"""The audit page: owners and admins of the org (it shows membership and key events)."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from audit.selectors import (
    AUDIT_EVENTS,
    AuditFilters,
    audit_chain_status_cached,
    audit_export_chunk,
    audit_filters_parse,
    audit_list,
)
from dac.errors import ValidationFailed
from tenants.decorators import org_admin_required

PAGE = "audit/audit_log.html"
PAGE_SIZE = 50
EXPORT_CHUNK = 2000
CSV_COLUMNS = (
    "seq", "created_at", "event", "actor_type", "actor_id", "actor_label", "target", "details",
    "request_hash", "response_hash", "prev_hash", "hash",
)


@org_admin_required
@vary_on_headers("HX-Request")
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    status, error = 200, ""
    try:
        filters = audit_filters_parse(request.GET)
    except ValidationFailed as exc:
        # With htmx a 422, which it swaps in (static/js/ui.js): the results say what was wrong.
        filters, status, error = AuditFilters(), 422 if request.htmx else 400, exc.message
    page = Paginator(audit_list(filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "error": error,
        "values": {k: request.GET.get(k, "") for k in ("event", "actor", "since", "until")},
        "events": AUDIT_EVENTS,
        "query": urlencode(filters.params),
        "chain": audit_chain_status_cached(org_id=request.org_access.org_id),
    }
    template = f"{PAGE}#audit-results" if request.htmx else PAGE
    return render(request, template, context, status=status)


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False) if isinstance(value, dict) else str(value)
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


async def _csv_rows(filters: AuditFilters):
    yield _csv_line(CSV_COLUMNS)
    after = 0
    while True:
        # One short query per chunk; the rows stream out between queries.
        chunk = await sync_to_async(audit_export_chunk)(filters=filters, after_seq=after, limit=EXPORT_CHUNK)
        if not chunk:
            return
        yield "".join(
            _csv_line([_cell(row.seq), row.created_at.isoformat()] + [_cell(getattr(row, c)) for c in CSV_COLUMNS[2:]])
            for row in chunk
        )
        after = chunk[-1].seq


@org_admin_required
@require_GET
def audit_export(request: HttpRequest) -> HttpResponse:
    try:
        filters = audit_filters_parse(request.GET)
    except ValidationFailed as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(_csv_rows(filters), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{request.org_access.slug or request.org_access.org_id}-{stamp}.csv"'
    return response
