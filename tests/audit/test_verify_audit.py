"""`manage.py verify_audit` finds every kind of tampering done directly in the database.

The tampering runs as the OWNER role (the runtime role cannot update or delete audit rows);
the owner is subject to FORCE RLS too, so it turns the operator flag on first.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from audit.chain import canonical_content, link_hash
from audit.services import Actor, audit_record
from tenants.context import operator_context, tenant_context
from tenants.models import Organization

pytestmark = pytest.mark.django_db(databases=["default", "owner"], transaction=True)


@pytest.fixture
def chain(org_a, org_b):
    """Org A's chain: org.created then five events, seq 1..6."""
    with tenant_context(org_a):
        for i in range(5):
            audit_record(org_id=org_a.id, actor=Actor.system(), event="test.event", details={"i": i})
    return org_a


def owner_sql(sql, params=()):
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT set_config('app.operator', 'on', false)")
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def verify(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as exc:
        return 1, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_the_tampering_runs_as_the_owner_not_a_superuser(chain):
    [(user, superuser)] = owner_sql("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
    assert not superuser and user != connections["default"].settings_dict["USER"]


def test_intact_chains_verify_and_report_count_and_head(chain):
    code, out = verify()
    assert code == 0, out
    assert f"org-a (org {chain.id}): 6 entries, OK, head #6" in out
    assert "org-b" in out and "system chain:" in out and "All 3 chain(s) verified." in out


def test_details_json_has_no_type_for_are_stored_as_hashed(org_a):
    """A datetime or a Decimal in an event's details is stored as the text its hash covers, so
    the chain still verifies (it was stored in another form once, and then read as tampered)."""
    at = datetime(2026, 11, 26, 22, 6, 30, 276342, tzinfo=UTC)
    with tenant_context(org_a):
        audit_record(org_id=org_a.id, actor=Actor.system(), event="test.types", details={"at": at, "amount": Decimal("1.50"), "note": 'Zoë said "hi"\n'})
    [(details,)] = owner_sql("SELECT details FROM audit_auditlog WHERE org_id = %s AND event = 'test.types'", [org_a.id])
    assert json.loads(details) == {"at": "2026-11-26 22:06:30.276342+00:00", "amount": "1.50", "note": 'Zoë said "hi"\n'}
    code, out = verify()
    assert code == 0, out


def test_text_postgresql_cannot_store_is_replaced_before_hashing_and_verifies(org_a):
    """U+0000 and a lone surrogate (a user's message quoted in a routing reason, a model name a
    provider sent) became U+FFFD: the append used to fail, and the answer with it."""
    with tenant_context(org_a):
        row = audit_record(org_id=org_a.id, actor=Actor.system(), event="test.text", target="model:x\x00y",
                           details={"reason": "hi \x00 there", "model": "m\ud800", "keep": ["\x00", 1]})
    assert row.details == {"reason": "hi \ufffd there", "model": "m\ufffd", "keep": ["\ufffd", 1]}
    [(target, details)] = owner_sql("SELECT target, details FROM audit_auditlog WHERE org_id = %s AND event = 'test.text'", [org_a.id])
    assert target == "model:x\ufffdy" and json.loads(details) == row.details
    code, out = verify()
    assert code == 0, out


def test_numbers_and_keys_jsonb_would_rewrite_are_stored_as_hashed(org_a):
    """A float jsonb gives back in another form (1e+16 as 10000000000000000, -0.0 as 0.0) made
    verify_audit report the row tampered; NaN, Infinity and dict keys of mixed types made the
    append fail. They are now written as jsonb gives them back, before the row is hashed."""
    details = {"big": 1e16, "bigger": [-2.5e20, 1e23], "zero": -0.0, "nan": float("nan"), "inf": float("-inf"),
               1: "one", "small": 1.5e-7, "name": "e+1 -0.0] NaN"}
    with tenant_context(org_a):
        row = audit_record(org_id=org_a.id, actor=Actor.system(), event="test.numbers", details=details)
    expected = {"big": 10**16, "bigger": [-25 * 10**19, 10**23], "zero": 0.0, "nan": "NaN", "inf": "-Infinity",
                "1": "one", "small": 1.5e-7, "name": "e+1 -0.0] NaN"}
    assert row.details == expected
    [(stored,)] = owner_sql("SELECT details FROM audit_auditlog WHERE org_id = %s AND event = 'test.numbers'", [org_a.id])
    assert json.loads(stored) == expected
    code, out = verify()
    assert code == 0, out


def test_keys_that_are_all_numbers_are_stored_as_hashed(org_a):
    """json.dumps sorts number keys as numbers (9 before 10) and raises nothing; read back as
    strings they sort as text ("10" before "9"): verify_audit reported such a row tampered."""
    with tenant_context(org_a):
        row = audit_record(org_id=org_a.id, actor=Actor.system(), event="test.keys", details={"by_hour": {9: 1, 10: 2}})
    assert row.details == {"by_hour": {"9": 1, "10": 2}}
    code, out = verify()
    assert code == 0, out


def test_an_edited_row_is_found(chain):
    owner_sql("UPDATE audit_auditlog SET details = '{\"i\": 99}' WHERE org_id = %s AND seq = 3", [chain.id])
    code, out = verify()
    assert code == 1
    assert "org-a" in out and "BROKEN at seq 3" in out and "edited" in out
    assert "1 audit chain(s) broken" in out


def test_a_deleted_middle_row_is_found(chain):
    owner_sql("DELETE FROM audit_auditlog WHERE org_id = %s AND seq = 3", [chain.id])
    code, out = verify("org-a")
    assert code == 1 and "5 entries, BROKEN at seq 4" in out and "deleted or inserted" in out


def test_an_inserted_forged_row_is_found_even_with_a_correct_hash(chain):
    # Make room after seq 3 and insert a row whose own hash is computed exactly as the app would.
    owner_sql("UPDATE audit_auditlog SET seq = seq + 1000 WHERE org_id = %s AND seq >= 4", [chain.id])
    owner_sql("UPDATE audit_auditlog SET seq = seq - 999 WHERE org_id = %s AND seq >= 1004", [chain.id])
    [(prev_hash, created_at)] = owner_sql("SELECT hash, created_at FROM audit_auditlog WHERE org_id = %s AND seq = 3", [chain.id])
    fields = dict(org_id=chain.id, seq=4, actor_type="system", actor_id="", actor_label="system", event="provider_key.deleted",
                  target="provider_key:1", details={}, request_hash="", response_hash="", created_at=created_at)
    forged_hash = link_hash(prev_hash, canonical_content(**fields))
    owner_sql(
        "INSERT INTO audit_auditlog (org_id, seq, actor_type, actor_id, actor_label, event, target, details, request_hash,"
        " response_hash, created_at, prev_hash, hash) VALUES (%s, 4, 'system', '', 'system', 'provider_key.deleted',"
        " 'provider_key:1', '{}', '', '', %s, %s, %s)",
        [chain.id, created_at, prev_hash, forged_hash],
    )
    code, out = verify("org-a")
    assert code == 1 and "7 entries, BROKEN at seq 5" in out and "prev_hash" in out


def test_a_naively_forged_tail_row_is_found(chain):
    [(prev_hash,)] = owner_sql("SELECT hash FROM audit_auditlog WHERE org_id = %s AND seq = 6", [chain.id])
    owner_sql(
        "INSERT INTO audit_auditlog (org_id, seq, actor_type, actor_id, actor_label, event, target, details, request_hash,"
        " response_hash, created_at, prev_hash, hash) VALUES (%s, 7, 'system', '', '', 'forged', '', '{}', '', '', now(), %s, %s)",
        [chain.id, prev_hash, "f" * 64],
    )
    code, out = verify("org-a")
    assert code == 1 and "BROKEN at seq 7" in out


def test_two_swapped_rows_are_found(chain):
    owner_sql("UPDATE audit_auditlog SET seq = -1 WHERE org_id = %s AND seq = 3", [chain.id])
    owner_sql("UPDATE audit_auditlog SET seq = 3 WHERE org_id = %s AND seq = 4", [chain.id])
    owner_sql("UPDATE audit_auditlog SET seq = 4 WHERE org_id = %s AND seq = -1", [chain.id])
    code, out = verify()
    assert code == 1 and "6 entries, BROKEN at seq 3" in out


def test_a_tampered_system_chain_is_found(chain):
    audit_record(org_id=None, actor=Actor.system(), event="test.system", details={"x": 1})
    owner_sql("UPDATE audit_auditlog SET actor_label = 'someone else' WHERE org_id IS NULL AND event = 'test.system'")
    code, out = verify()
    assert code == 1 and "system chain:" in out and "BROKEN" in out.split("system chain:")[1]


def test_a_deleted_orgs_chain_is_still_verified_and_its_tampering_found(chain):
    """Its rows stay when an org is deleted (an expired demo sandbox): they were never checked
    ("All 2 chain(s) verified" with one of them edited)."""
    org_id = chain.id
    with operator_context(reason="test", audit=False):
        Organization.objects.filter(pk=org_id).delete()
    code, out = verify()
    assert code == 0, out
    assert f"deleted org {org_id}: 6 entries, OK" in out and "All 3 chain(s) verified." in out
    owner_sql("UPDATE audit_auditlog SET details = '{\"i\": 99}' WHERE org_id = %s AND seq = 3", [org_id])
    code, out = verify()
    assert code == 1 and f"deleted org {org_id}: 6 entries, BROKEN at seq 3" in out, out


def test_a_deleted_orgs_chain_can_be_named_alone_by_its_id(chain):
    org_id = chain.id
    with operator_context(reason="test", audit=False):
        Organization.objects.filter(pk=org_id).delete()
    owner_sql("UPDATE audit_auditlog SET details = '{\"i\": 99}' WHERE org_id = %s AND seq = 4", [org_id])
    code, out = verify("--org-id", str(org_id))
    assert code == 1 and f"deleted org {org_id}: 6 entries, BROKEN at seq 4" in out and "org-b" not in out, out
    assert verify("--org-id", "987654")[1].endswith("No organization 987654 and no audit chain of one.")
    code, out = verify("org-b", "--org-id", str(org_id))
    assert code == 1 and "not both" in out


def test_naming_one_org_checks_only_that_chain(chain):
    owner_sql("DELETE FROM audit_auditlog WHERE org_id = %s AND seq = 2", [chain.id])
    code, out = verify("org-b")
    assert code == 0 and "org-b" in out and "org-a" not in out


def test_an_unknown_slug_is_an_error(chain):
    code, out = verify("no-such-org")
    assert code == 1 and "No organization" in out


def test_the_pages_bounded_check_walks_only_the_newest_rows_but_still_finds_an_edit_there(chain):
    from audit.selectors import audit_chain_status

    with tenant_context(chain):
        status = audit_chain_status(org_id=chain.id, newest=3)
    assert status.ok and not status.full and status.from_seq == 3 and status.checked == 4 and status.count == 6
    owner_sql("UPDATE audit_auditlog SET details = '{}' WHERE org_id = %s AND seq = 5", [chain.id])
    with tenant_context(chain):
        status = audit_chain_status(org_id=chain.id, newest=3)
    assert not status.ok and status.broken.seq == 5
