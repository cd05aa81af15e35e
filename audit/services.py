"""Writing the audit log. Every event goes through `audit_record`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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
    """Append one event to the org's chain (org_id None: the system chain).

    Runs in its own short transaction; the per-org advisory lock makes seq gapless and the
    chain linear even with many writers.
    """
    details = details or {}
    # Writing another chain than the caller's (system events, sign-up) is allowed only here.
    token = set_tenant(Tenant(org_id=org_id, operator=org_id is None or current_tenant().operator))
    try:
        with transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [_CHAIN_LOCK_NAMESPACE, org_id or 0]
                )
            last = (
                AuditLog.objects.filter(org_id=org_id).order_by("-seq").values("seq", "hash").first()
            )
            seq = (last["seq"] + 1) if last else 1
            prev_hash = last["hash"] if last else GENESIS_HASH
            row = AuditLog(
                org_id=org_id,
                seq=seq,
                actor_type=actor.type,
                actor_id=actor.id,
                actor_label=actor.label,
                event=event,
                target=target,
                details=details,
                request_hash=request_hash,
                response_hash=response_hash,
                created_at=timezone.now(),
                prev_hash=prev_hash,
            )
            row.hash = link_hash(prev_hash, row_content(row))
            row.save(force_insert=True)
            return row
    finally:
        reset_tenant(token)


def audit_operator_bypass(*, actor: str, reason: str) -> None:
    audit_record(
        org_id=None,
        actor=Actor.system(actor),
        event="operator.bypass",
        details={"reason": reason},
    )
