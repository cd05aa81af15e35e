"""Routing changes are audited ("routing.settings"): by whom, and what changed, before and after,
from the page's "Save routing" and from PATCH /api/v1/routing/settings alike."""

import pytest
from django.test import Client

from audit.models import AuditLog
from audit.selectors import audit_chain_status
from audit.services import Actor
from routing import rules
from routing.services import routing_settings_update
from tenants.context import tenant_context
from tests.assertions import assert_error_shape
from tests.factories import api_token_for

pytestmark = pytest.mark.django_db

DEFAULT_ORDER = list(rules.RULE_NAMES)


def _changes(org) -> list[AuditLog]:
    with tenant_context(org):
        return list(AuditLog.objects.filter(event="routing.settings").order_by("seq"))


def _form(order=DEFAULT_ORDER, disabled=(), models=None) -> dict:
    """The page's form as a browser posts it."""
    data = {}
    for position, name in enumerate(order, start=1):
        data[f"position_{name}"] = str(position)
        data[f"model_{name}"] = (models or {}).get(name, rules.DEFAULT_MODELS[name])
        if name not in disabled:
            data[f"enabled_{name}"] = "on"
    return data


def test_patching_disabled_rules_records_who_and_what_changed(alice_client, alice, org_a):
    response = alice_client.patch("/api/v1/routing/settings", {"disabled_rules": ["web"]}, content_type="application/json")
    assert response.status_code == 200 and response.json()["disabled_rules"] == ["web"]
    [change] = _changes(org_a)
    assert (change.actor_type, change.actor_id, change.actor_label) == ("user", str(alice.pk), "alice@example.com")
    assert change.target == f"org:{org_a.id}"
    assert change.details == {"before": {"disabled_rules": []}, "after": {"disabled_rules": ["web"]}}


def test_saving_the_routing_page_records_order_models_and_rules_switched_off(alice_client, alice, org_a):
    order = ["question", *[name for name in DEFAULT_ORDER if name != "question"]]
    response = alice_client.post("/settings/routing/save/", _form(order, disabled=["structured"], models={"web": "sonar-pro"}))
    assert response.status_code == 302
    [change] = _changes(org_a)
    assert change.actor_label == "alice@example.com" and change.actor_type == "user"
    assert change.details["before"] == {
        "rule_order": DEFAULT_ORDER,
        "disabled_rules": [],
        "models": dict(rules.DEFAULT_MODELS),
    }
    assert change.details["after"] == {
        "rule_order": order,
        "disabled_rules": ["structured"],
        "models": {**rules.DEFAULT_MODELS, "web": "sonar-pro"},
    }


def test_each_change_is_a_link_of_the_orgs_verified_chain_and_shows_on_the_audit_page(alice_client, org_a):
    alice_client.patch("/api/v1/routing/settings", {"disabled_rules": ["web"]}, content_type="application/json")
    alice_client.patch("/api/v1/routing/settings", {"disabled_rules": []}, content_type="application/json")
    assert [c.details["after"] for c in _changes(org_a)] == [{"disabled_rules": ["web"]}, {"disabled_rules": []}]
    with tenant_context(org_a):
        assert audit_chain_status(org_id=org_a.id).ok
    body = alice_client.get("/api/v1/audit/?event=routing.settings").json()
    assert body["count"] == 2 and body["results"][0]["actor_label"] == "alice@example.com"
    assert "org:%d" % org_a.id in alice_client.get("/audit/?event=routing.settings").content.decode()


def test_saving_without_a_change_records_nothing(alice_client, org_a):
    """The page posts every setting: a save with the current (default) values changes nothing."""
    assert alice_client.post("/settings/routing/save/", _form()).status_code == 302
    assert alice_client.patch("/api/v1/routing/settings", {"disabled_rules": []}, content_type="application/json").status_code == 200
    assert _changes(org_a) == []


def test_a_refused_change_records_nothing(alice_client, org_a):
    response = alice_client.patch("/api/v1/routing/settings", {"disabled_rules": ["default"]}, content_type="application/json")
    assert_error_shape(response, 400, "validation_error")
    assert _changes(org_a) == []


def test_a_member_and_a_token_get_403_and_nothing_is_recorded(bob_client, org_a):
    assert_error_shape(bob_client.patch("/api/v1/routing/settings", {"disabled_rules": ["web"]}, content_type="application/json"), 403)
    assert bob_client.post("/settings/routing/save/", _form(disabled=["web"])).status_code == 403
    token = Client(headers={"Authorization": f"Bearer {api_token_for(org_a, 'ci')}"})
    assert_error_shape(token.patch("/api/v1/routing/settings", {"disabled_rules": ["web"]}, content_type="application/json"), 403)
    assert _changes(org_a) == []


def test_charlie_gets_404_for_org_a_and_nothing_is_recorded(charlie_client, org_a, org_b):
    response = charlie_client.patch(
        "/api/v1/routing/settings", {"disabled_rules": ["web"]}, content_type="application/json", headers={"X-Org-Id": str(org_a.id)}
    )
    assert_error_shape(response, 404)
    assert charlie_client.post("/settings/routing/save/", _form(disabled=["web"]), headers={"X-Org-Id": str(org_a.id)}).status_code == 404
    assert _changes(org_a) == [] and _changes(org_b) == []


def test_a_change_made_by_the_system_says_so(org_a):
    with tenant_context(org_a):
        routing_settings_update(org_id=org_a.id, actor=Actor.system(), models={"web": "sonar-reasoning"})
    [change] = _changes(org_a)
    assert change.actor_type == "system"
    assert change.details["after"]["models"]["web"] == "sonar-reasoning"
