"""Every audit event the code writes is one of AUDIT_EVENTS, the /audit/ page's Event choices.

The writers are found in the source: each `audit_record(..., event="...")` and
`AuditEvent("...", ...)` call of the project's own code (not tests, not benchmarks' filler rows).
"""

import ast
import os
from pathlib import Path

import pytest

from audit.selectors import AUDIT_EVENTS

ROOT = Path(__file__).resolve().parents[2]
NOT_THE_APP = {"tests", "bench", "docs", "static", "templates", "var", "node_modules"}
WRITERS = ("audit_record", "AuditEvent")
# audit_record hands its own `event` argument on to AuditEvent: the one call without a literal.
FORWARDER = "audit/services.py"


def _source_files():
    for directory, subdirectories, files in os.walk(ROOT):
        here = Path(directory).relative_to(ROOT)
        subdirectories[:] = sorted(
            name for name in subdirectories if not name.startswith(".") and not (here == Path(".") and name in NOT_THE_APP)
        )
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(directory) / name


def _written_events() -> tuple[dict[str, str], list[str]]:
    """(event → where it is first written, the writes whose event is not a literal string)."""
    written: dict[str, str] = {}
    dynamic: list[str] = []
    for path in _source_files():
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), where)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name not in WRITERS:
                continue
            event = next((keyword.value for keyword in node.keywords if keyword.arg == "event"), None)
            if event is None and name == "AuditEvent" and node.args:
                event = node.args[0]
            if isinstance(event, ast.Constant) and isinstance(event.value, str):
                written.setdefault(event.value, f"{where}:{node.lineno}")
            elif where != FORWARDER:
                dynamic.append(f"{where}:{node.lineno}")
    return written, dynamic


@pytest.fixture(scope="module")
def scan():
    return _written_events()


def test_the_scan_finds_the_writers_of_both_kinds(scan):
    written, _ = scan
    # keyword (audit_record) and positional (AuditEvent, the send pipeline) writers alike
    assert {"limits.changed", "operator.bypass", "auth.login_failed", "provider.call", "routing.decision"} <= set(written)


def test_every_event_the_code_writes_is_a_choice_of_the_audit_page(scan):
    written, _ = scan
    missing = {event: where for event, where in written.items() if event not in AUDIT_EVENTS}
    assert not missing, f"add these to audit.selectors.AUDIT_EVENTS: {missing}"


def test_every_write_names_its_event_literally(scan):
    """A name built at run time could not be checked above: write it out."""
    _, dynamic = scan
    assert not dynamic, f"audit writes whose event is not a string literal: {dynamic}"


@pytest.mark.django_db
def test_the_event_dropdown_lists_memory_and_routing_settings_changes(alice_client):
    html = alice_client.get("/audit/").content.decode()
    for event in ("memory.settings", "memory.forget", "routing.settings"):
        assert f'<option value="{event}"' in html
