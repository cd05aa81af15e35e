from __future__ import annotations

from django.db import models
from django.utils import timezone

from tenants.models import Organization, TenantManager


class ActorType(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"


class AuditLog(models.Model):
    """One link of an org's hash chain. Append-only: the runtime role may not update or delete.

    `hash` = sha256(previous hash of the same chain + canonical content). Events with no org
    (operator bypasses, failed logins) form the system chain, org NULL, visible to operators.
    """

    # No database constraint: an org can be deleted (an expired demo sandbox) while its chain,
    # the record of what happened, stays whole and verifiable. No index of its own either: the
    # unique (org, seq) index serves every lookup by org, and each index is one more write per row.
    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    seq = models.BigIntegerField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    event = models.CharField(max_length=64)
    target = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    response_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = TenantManager()

    class Meta:
        # NULLS NOT DISTINCT: the system chain (org NULL) gets a gapless, unique seq too.
        constraints = [models.UniqueConstraint(fields=["org", "seq"], name="audit_unique_seq", nulls_distinct=False)]
        indexes = [models.Index(fields=["org", "event", "created_at"], name="audit_org_event_idx")]
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event}"
