"""From a message to an ordered chain of provider candidates, with every skip explained.

The rules (routing.rules) pick the provider that suits the message; this module turns that
into what the send pipeline can try: the chosen provider first, then the providers of the
other rules as fallbacks, skipping each one that cannot serve (no key, member not permitted)
and saying why. Quota and failures are checked later by the pipeline, which adds its own
skips to the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from audit.services import Actor, audit_record
from dac.errors import Forbidden, ValidationFailed
from dac.org_cache import PerOrgCache
from dac.storable_text import unstorable_reason
from providers.adapters import ADAPTERS
from routing import rules
from routing.models import RoutingSettings
from tenants.context import require_org_id

# After the rules' own providers, anything else the org configured (a custom endpoint).
EXTRA_FALLBACKS = ("openai_compatible",)


@dataclass
class Candidate:
    provider: str
    model: str
    key_id: int | None


@dataclass
class RoutePlan:
    rule: str
    reason: str
    candidates: list[Candidate]
    skipped: list[dict] = field(default_factory=list)
    explicit: bool = False
    recalled: list[dict] = field(default_factory=list)  # memories added to the context

    def skip(self, provider: str, why: str) -> None:
        self.skipped.append({"provider": provider, "reason": why})

    def to_dict(self, *, chosen: Candidate | None = None) -> dict:
        return {
            "rule": self.rule,
            "reason": self.reason,
            "explicit": self.explicit,
            "provider": chosen.provider if chosen else (self.candidates[0].provider if self.candidates else None),
            "model": chosen.model if chosen else (self.candidates[0].model if self.candidates else None),
            "skipped": list(self.skipped),
            "recalled": list(self.recalled),
        }


@dataclass(frozen=True)
class OrgRouting:
    rule_order: list[str] | None
    disabled: frozenset[str]
    models: dict[str, str]


_org_routing: PerOrgCache[OrgRouting] = PerOrgCache("org_routing", RoutingSettings)


def org_routing() -> OrgRouting:
    """The current org's routing settings (cached for a few seconds: dac/org_cache.py)."""
    return _org_routing.get(require_org_id(), _load_org_routing)


def org_routing_cached(org_id: int) -> OrgRouting | None:
    """`org_routing` of an org if this process has it cached, else None (never queries)."""
    return _org_routing.cached(org_id)


def _load_org_routing() -> OrgRouting:
    row = RoutingSettings.objects.first()
    if row is None:
        return OrgRouting(None, frozenset(), {})
    return OrgRouting(row.rule_order or None, frozenset(row.disabled_rules or ()), dict(row.models or {}))


def routing_settings_update(
    *,
    org_id: int,
    actor: Actor,
    rule_order: list[str] | None = None,
    disabled_rules: list[str] | None = None,
    models: dict[str, str] | None = None,
) -> RoutingSettings:
    """Change an org's routing (admins); None keeps a value. A change is audited
    ("routing.settings": each setting that changed, before and after, as the rules apply it);
    `actor` is who made it."""
    names = list(rules.RULE_NAMES)
    if rule_order is not None:
        if sorted(rule_order) != sorted(names):
            raise ValidationFailed(f"rule_order must list each of {', '.join(names)} exactly once.", detail={"rule_order": "invalid"})
    if disabled_rules is not None:
        unknown = set(disabled_rules) - set(names)
        if unknown:
            raise ValidationFailed(f"Unknown rule(s): {', '.join(sorted(unknown))}.", detail={"disabled_rules": "unknown"})
        if "default" in disabled_rules:
            raise ValidationFailed("The default rule catches everything else and cannot be switched off.", detail={"disabled_rules": "default"})
    if models is not None:
        unknown = set(models) - set(names)
        if unknown:
            raise ValidationFailed(f"Unknown rule(s) in models: {', '.join(sorted(unknown))}.", detail={"models": "unknown"})
        for rule, model in models.items():
            if not isinstance(model, str) or not model.strip() or len(model) > 200:
                raise ValidationFailed(f"The model for {rule} must be a name of 1-200 characters.", detail={"models": rule})
            if reason := unstorable_reason(f"The model for {rule}", model):
                raise ValidationFailed(reason, detail={"models": rule})
    with transaction.atomic():  # the change and its audit record commit together
        row, _ = RoutingSettings.objects.select_for_update().get_or_create(org_id=org_id)
        before = _effective(row)
        if rule_order is not None:
            row.rule_order = rule_order
        if disabled_rules is not None:
            row.disabled_rules = sorted(set(disabled_rules))
        if models is not None:
            row.models = {rule: model.strip() for rule, model in models.items()}
        row.save()
        after = _effective(row)
        changed = [name for name in after if after[name] != before[name]]
        if changed:
            audit_record(
                org_id=org_id,
                actor=actor,
                event="routing.settings",
                target=f"org:{org_id}",
                details={"before": {name: before[name] for name in changed}, "after": {name: after[name] for name in changed}},
            )
    return row


def _effective(row: RoutingSettings) -> dict:
    """The settings as routing applies them (an empty order is the default order, a rule with no
    model its default model), so a save that changes nothing the rules do is no change."""
    return {
        "rule_order": list(row.rule_order or rules.RULE_NAMES),
        "disabled_rules": sorted(row.disabled_rules or ()),
        "models": {rule: (row.models or {}).get(rule) or rules.DEFAULT_MODELS[rule] for rule in rules.RULE_NAMES},
    }


def plan_route(
    *,
    text: str,
    message_count: int,
    keys: dict,
    may_use,
    routing: OrgRouting,
    explicit_provider: str | None = None,
    explicit_model: str | None = None,
    wants_json: bool = False,
    tools: bool = False,
    logit_bias: bool = False,
) -> RoutePlan:
    """Build the candidate chain. `keys` maps provider → active ProviderKey; `may_use(provider)`
    says whether the caller is permitted; `wants_json` that the answer must be JSON, `tools` that
    functions are offered to call (both structured output; with tools only the providers that
    take them are candidates, and with `logit_bias` likewise). With no key at all, the demo
    provider answers (and says so); with keys that cannot serve, the plan has no candidates and
    says why."""
    if explicit_provider:
        lacking = _lacking(explicit_provider, tools, logit_bias) if explicit_provider in ADAPTERS else None
        if lacking is not None:
            field, reason = lacking
            raise ValidationFailed(f"{explicit_provider} {reason}: send {field} to another provider, or model auto.",
                                   detail={"provider": f"no_{field}"})
        return _explicit_plan(explicit_provider, explicit_model, keys, may_use)
    because = ("The request offers functions to call (tools)" if tools
               else "The request asks for a JSON answer (response_format)" if wants_json else None)
    decision = rules.evaluate(text, message_count, rule_order=routing.rule_order, disabled=routing.disabled, models=routing.models,
                              structured_because=because)
    plan = RoutePlan(rule=decision.rule, reason=decision.reason, candidates=[])
    if not keys:
        plan.reason += ". No provider key is configured yet, so the offline demo provider answers"
        plan.skip(decision.provider, "no key configured")
        plan.candidates.append(Candidate("demo", "demo-1", None))
        return plan
    order = [decision.provider]
    model_for = {decision.provider: decision.model}
    for rule in routing.rule_order or rules.RULE_NAMES:
        provider = rules.RULE_PROVIDERS[rule]
        if provider not in order:
            order.append(provider)
            model_for[provider] = routing.models.get(rule) or rules.DEFAULT_MODELS[rule]
    order += [p for p in EXTRA_FALLBACKS if p not in order]
    for provider in order:
        key = keys.get(provider)
        lacking = _lacking(provider, tools, logit_bias)
        if lacking is not None:
            plan.skip(provider, f"it {lacking[1]} ({lacking[0]})")
        elif key is None:
            plan.skip(provider, "no key configured")
        elif not may_use(provider):
            plan.skip(provider, "you are not permitted to use it")
        else:
            model = (key.default_model or model_for.get(provider)) if provider == "openai_compatible" else model_for.get(provider) or key.default_model
            plan.candidates.append(Candidate(provider, model or "default", key.pk))
    return plan


def _lacking(provider: str, tools: bool, logit_bias: bool) -> tuple[str, str] | None:
    """(the request field, why) when the provider cannot take what the request needs, else None."""
    adapter = ADAPTERS[provider]
    if tools and not adapter.takes_tools:
        return "tools", "does not call functions"
    if logit_bias and not adapter.takes_logit_bias:
        return "logit_bias", "takes no token bias"
    return None


def _explicit_plan(provider: str, model: str | None, keys: dict, may_use) -> RoutePlan:
    if provider not in ADAPTERS:
        raise ValidationFailed(f"Unknown provider {provider!r}.", detail={"provider": "unknown"})
    plan = RoutePlan(rule="explicit", reason=f"You chose {provider} for this message.", candidates=[], explicit=True)
    if provider == "demo":
        plan.candidates.append(Candidate("demo", model or "demo-1", None))
        return plan
    key = keys.get(provider)
    if key is None:
        raise ValidationFailed(f"{provider} has no key configured: add one in Settings → Providers.", detail={"provider": "no_key"}, code="no_key")
    if not may_use(provider):
        raise Forbidden(f"You are not permitted to use {provider}; ask an admin of your organization.")
    default = key.default_model or ADAPTERS[provider].default_model or "default"
    plan.candidates.append(Candidate(provider, model or default, key.pk))
    return plan
