"""Reading, filtering and verifying the audit chains."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import dateparse, timezone

from audit.chain import GENESIS_HASH, link_hash, row_content
from audit.models import AuditLog
from dac.errors import ValidationFailed
from dac.storable_text import unstorable_reason

#: Every event type the code writes: the page's Event choices (any other value filters exactly
#: too). tests/audit/test_event_registry.py fails when a writer's event is missing here.
AUDIT_EVENTS: tuple[str, ...] = (
    "org.created",
    "membership.added",
    "membership.accepted",
    "membership.declined",
    "membership.role_changed",
    "membership.removed",
    "api_token.created",
    "api_token.revoked",
    "agent_permission.changed",
    "limits.changed",
    "quota.reset",
    "provider_key.added",
    "provider_key.activated",
    "provider_key.deleted",
    "provider_key.tested",
    "provider_key.rotated",
    "provider.call",
    "routing.decision",
    "routing.settings",
    "memory.read",
    "memory.forget",
    "memory.settings",
    "operator.bypass",
    "auth.login_failed",
)


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


@dataclass(frozen=True)
class ChainStatus:
    org_id: int | None
    count: int
    head_seq: int
    head_hash: str
    checked: int
    broken: ChainBreak | None
    from_seq: int = 1  # where this walk started: 1 for a full verification

    @property
    def ok(self) -> bool:
        return self.broken is None

    @property
    def full(self) -> bool:
        return self.from_seq <= 1


@dataclass(frozen=True)
class AuditFilters:
    event: str = ""
    actor: str = ""
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    params: dict = field(default_factory=dict)  # the cleaned query values, to rebuild links

    def apply(self, queryset: QuerySet[AuditLog]) -> QuerySet[AuditLog]:
        if self.event:
            if self.event.endswith(".*"):
                queryset = queryset.filter(event__startswith=self.event[:-1])
            else:
                queryset = queryset.filter(event=self.event)
        if self.actor:
            queryset = queryset.filter(actor_label__icontains=self.actor)
        if self.since is not None:
            queryset = queryset.filter(created_at__gte=self.since)
        if self.until is not None:
            queryset = queryset.filter(created_at__lt=self.until)
        return queryset


def _parse_moment(name: str, value: str, *, end: bool) -> datetime:
    """A date alone is a whole UTC day: `since` starts at its start, `until` takes it in whole
    (the bound is the next day's start, exclusive). An ISO 8601 date-time is exact (naive: in
    TIME_ZONE, which is UTC)."""
    try:
        # The date first: from Python 3.11, parse_datetime reads "2026-11-27" as its midnight,
        # and `until` then ended where its day starts.
        day = dateparse.parse_date(value)
        if day is not None:
            if end and day == date.max:
                return datetime.max.replace(tzinfo=UTC)  # no next day to end at
            return datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=UTC)
        parsed = dateparse.parse_datetime(value)
        if parsed is None:
            raise ValueError
    except ValueError:
        raise ValidationFailed(
            f"{name}: use a date (YYYY-MM-DD) or an ISO 8601 date-time.",
            detail={name: [f"{value!r} is not a date."]},
        ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def audit_filters_parse(params: Mapping[str, str]) -> AuditFilters:
    """Filters from query parameters (`event`, `actor`, `since`, `until`); 400 on bad input."""
    event = (params.get("event") or "").strip()
    actor = (params.get("actor") or "").strip()
    since_raw = (params.get("since") or "").strip()
    until_raw = (params.get("until") or "").strip()
    if len(event) > 64:
        raise ValidationFailed("event: at most 64 characters.", detail={"event": ["Too long."]})
    if len(actor) > 255:
        raise ValidationFailed("actor: at most 255 characters.", detail={"actor": ["Too long."]})
    for name, value in (("event", event), ("actor", actor)):  # no row holds them, and PostgreSQL could not compare them
        if reason := unstorable_reason(name, value):
            raise ValidationFailed(reason, detail={name: ["Not storable text."]})
    since = _parse_moment("since", since_raw, end=False) if since_raw else None
    until = _parse_moment("until", until_raw, end=True) if until_raw else None
    if since is not None and until is not None and since >= until:
        raise ValidationFailed("since must be before until.", detail={"since": ["After until."]})
    cleaned = {k: v for k, v in (("event", event), ("actor", actor), ("since", since_raw), ("until", until_raw)) if v}
    return AuditFilters(event=event, actor=actor, since=since, until=until, params=cleaned)


def audit_list(*, filters: AuditFilters | None = None) -> QuerySet[AuditLog]:
    """The current org's audit rows, newest first (the tenant context decides the org)."""
    from tenants.context import require_org_id

    queryset = AuditLog.objects.filter(org_id=require_org_id()).order_by("-seq")
    return (filters or AuditFilters()).apply(queryset)


def audit_export_chunk(*, filters: AuditFilters, after_seq: int = 0, limit: int = 2000) -> list[AuditLog]:
    """The next `limit` filtered rows after `after_seq`, oldest first (keyset paging for CSV)."""
    return list(audit_list(filters=filters).filter(seq__gt=after_seq).order_by("seq")[:limit])


def audit_chain_verify(*, org_id: int | None) -> tuple[int, ChainBreak | None]:
    """Walk one chain in seq order; return (rows checked, first broken link or None)."""
    status = audit_chain_status(org_id=org_id)
    return status.checked, status.broken


def audit_chain_status(*, org_id: int | None, newest: int | None = None) -> ChainStatus:
    """Verify a chain (the caller's tenant or operator context must see it).

    Finds edited rows (content no longer matches its hash), deleted or inserted rows (a seq
    gap or a prev_hash that is not the previous row's hash) and reordered rows (seq swapped:
    both the content hash and the link break). With `newest`, only the newest rows are walked
    (plus the one before them, whose stored hash anchors the walk) — the audit page's bounded
    check; `manage.py verify_audit` walks the whole chain.
    """
    base = AuditLog.objects.filter(org_id=org_id)
    count = base.count()
    head = base.order_by("-seq").values_list("seq", "hash").first()
    head_seq, head_hash = head if head else (0, GENESIS_HASH)
    from_seq = 1
    if newest is not None and head_seq > newest + 1:
        from_seq = head_seq - newest  # the anchor row; its own hash is checked too
    rows = base.filter(seq__gte=from_seq).order_by("seq").values_list(
        "seq", "org_id", "actor_type", "actor_id", "actor_label", "event", "target", "details",
        "request_hash", "response_hash", "created_at", "prev_hash", "hash",
    )
    expected_seq = from_seq
    prev_hash: str | None = GENESIS_HASH if from_seq == 1 else None
    checked = 0
    broken = None
    for values in rows.iterator(chunk_size=2000):
        row = _Row(*values)
        checked += 1
        if prev_hash is None:  # windowed walk: trust the anchor's link, check its content
            prev_hash = row.prev_hash
        if row.seq != expected_seq:
            broken = ChainBreak(row.seq, f"expected seq {expected_seq}, found {row.seq} (a row was deleted or inserted)")
            break
        if row.prev_hash != prev_hash:
            broken = ChainBreak(row.seq, "prev_hash does not match the previous row's hash (a row was changed, removed, inserted or reordered)")
            break
        if link_hash(prev_hash, row_content(row)) != row.hash:
            broken = ChainBreak(row.seq, "content does not match its hash (the row was edited)")
            break
        prev_hash = row.hash
        expected_seq += 1
    return ChainStatus(org_id, count, head_seq, head_hash, checked, broken, from_seq)


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    org_id: int | None
    actor_type: str
    actor_id: str
    actor_label: str
    event: str
    target: str
    details: dict
    request_hash: str
    response_hash: str
    created_at: datetime
    prev_hash: str
    hash: str


def audit_chain_status_cached(*, org_id: int, newest: int | None = None) -> ChainStatus:
    """The audit page's check: the newest rows, cached for a minute per chain head."""
    newest = settings.DAC_AUDIT_PAGE_VERIFY_ROWS if newest is None else newest
    head = AuditLog.objects.filter(org_id=org_id).order_by("-seq").values_list("seq", "hash").first()
    key = f"dac:audit:chain:{org_id}:{head[0] if head else 0}:{head[1] if head else ''}:{newest}"
    status = cache.get(key)
    if status is None:
        status = audit_chain_status(org_id=org_id, newest=newest)
        cache.set(key, status, 60)
    return status
