"""Writing the audit log. Every event goes through `audit_record`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.db import connections, transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, link_hash, row_content
from audit.models import ActorType, AuditLog
from tenants.context import Tenant, current_tenant, reset_tenant, set_tenant

# Advisory-lock namespace for "the chain of org N": serializes appends per org, not globally.
_CHAIN_LOCK_NAMESPACE = 0x0DAC


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def user(cls, user) -> Actor:
        return cls(ActorType.USER, str(user.pk), user.email)

    @classmethod
    def token(cls, token) -> Actor:
        return cls(ActorType.TOKEN, str(token.pk), token.name)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, "", label)

    @classmethod
    def of_request(cls, request) -> Actor:
        token = getattr(request, "api_token", None)
        if token is not None:
            return cls.token(token)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls.user(user)
        return cls.system("anonymous")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    event: str
    target: str = ""
    details: dict = field(default_factory=dict)
    request_hash: str = ""
    response_hash: str = ""


def audit_record(
    *,
    org_id: int | None,
    actor: Actor,
    event: str,
    target: str = "",
    details: dict | None = None,
    request_hash: str = "",
    response_hash: str = "",
) -> AuditLog:
    """Append one event to the org's chain (org_id None: the system chain)."""
    event = AuditEvent(event, target, details or {}, request_hash, response_hash)
    return audit_records(org_id=org_id, actor=actor, events=[event])[0]


def audit_records(*, org_id: int | None, actor: Actor, events: list[AuditEvent]) -> list[AuditLog]:
    """Append several events to one chain in one short transaction, committed on return.

    The per-org advisory lock makes seq gapless and the chain linear with many writers; one
    lock and one read of the chain's head serve all the events (a provider call and its
    routing decision are written together).
    """
    # Writing another chain than the caller's (system events, sign-up) is allowed only here.
    token = set_tenant(Tenant(org_id=org_id, operator=org_id is None or current_tenant().operator))
    try:
        with transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_CHAIN_LOCK_NAMESPACE, org_id or 0])
            last = AuditLog.objects.filter(org_id=org_id).order_by("-seq").values("seq", "hash").first()
            seq = last["seq"] if last else 0
            prev_hash = last["hash"] if last else GENESIS_HASH
            rows = []
            for item in events:
                seq += 1
                row = AuditLog(
                    org_id=org_id,
                    seq=seq,
                    actor_type=actor.type,
                    actor_id=actor.id,
                    actor_label=actor.label,
                    event=item.event,
                    target=item.target,
                    details=item.details,
                    request_hash=item.request_hash,
                    response_hash=item.response_hash,
                    created_at=timezone.now(),
                    prev_hash=prev_hash,
                )
                row.hash = prev_hash = link_hash(prev_hash, row_content(row))
                rows.append(row)
            AuditLog.objects.bulk_create(rows)
            return rows
    finally:
        reset_tenant(token)


def audit_operator_bypass(*, actor: str, reason: str) -> None:
    audit_record(
        org_id=None,
        actor=Actor.system(actor),
        event="operator.bypass",
        details={"reason": reason},
    )
