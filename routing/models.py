from __future__ import annotations

from django.db import models

from tenants.models import TenantModel


class RoutingSettings(TenantModel):
    """An org's routing: the rule order, rules switched off, and the model per rule."""

    rule_order = models.JSONField(default=list, blank=True, help_text="Rule names in evaluation order; empty = default order.")
    disabled_rules = models.JSONField(default=list, blank=True)
    models = models.JSONField(default=dict, blank=True, help_text="Rule name → model, overriding the defaults.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org"], name="routing_settings_one_per_org")]
        verbose_name_plural = "routing settings"

    def __str__(self) -> str:
        return f"Routing of org {self.org_id}"
