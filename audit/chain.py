"""The hash chain: canonical content of an audit row, and the link hash over it."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from decimal import Decimal

from dac.storable_text import storable, unstorable_in_json

GENESIS_HASH = "0" * 64


def canonical_content(
    *,
    org_id: int | None,
    seq: int,
    actor_type: str,
    actor_id: str,
    actor_label: str,
    event: str,
    target: str,
    details: dict,
    request_hash: str,
    response_hash: str,
    created_at: datetime,
) -> str:
    payload = {
        "org_id": org_id,
        "seq": seq,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "event": event,
        "target": target,
        "details": details,
        "request_hash": request_hash,
        "response_hash": response_hash,
        "created_at": created_at.isoformat(timespec="microseconds"),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


# The fields `canonical_content` covers.
CONTENT_FIELDS = (
    "org_id", "seq", "actor_type", "actor_id", "actor_label", "event", "target", "details",
    "request_hash", "response_hash", "created_at",
)


def record_content(record: dict) -> str:
    """`canonical_content` of a row still being written (a dict of its fields)."""
    return canonical_content(**{name: record[name] for name in CONTENT_FIELDS})


def chained(records: list[dict], head: tuple[int, str]) -> str:
    """Rows being written (dicts of their content fields), placed after `head` (seq, hash) in
    order: each gets its seq, its predecessor's hash and its own. Returns them as the JSON array
    dac_audit_append takes: each row is its canonical content, the very text its hash covers,
    with its links added. So a row is stored as it was hashed, values JSON has no type for (a
    datetime, a Decimal) included, and the content is serialized once."""
    seq, prev_hash = head
    rows = []
    for record in records:
        seq += 1
        record["seq"], record["prev_hash"] = seq, prev_hash
        content = _stored_content(record)
        record["hash"] = link_hash(prev_hash, content)
        rows.append(f'{content[:-1]},"prev_hash":"{prev_hash}","hash":"{record["hash"]}"}}')
        prev_hash = record["hash"]
    return "[" + ",".join(rows) + "]"


def _jsonb_would_rewrite(content: str) -> bool:
    """Whether JSON text may hold what PostgreSQL's jsonb would not give back as json.dumps wrote
    it: a float written with an exponent (1e+16 comes back as 10000000000000000), -0.0 (comes back
    0.0), NaN and Infinity (refused). Substring tests (a regular expression costs ten times more
    here); a match inside a string only costs `_stored_content` its slow path."""
    return "e+" in content or "-0.0" in content or "NaN" in content or "Infinity" in content


def _stored_content(record: dict) -> str:
    """The record's canonical content, made first (in the record itself, before it is hashed) into
    what PostgreSQL stores and gives back unchanged, so that `verify_audit` reads the row as it was
    hashed: text it cannot store (U+0000, a lone surrogate) becomes U+FFFD
    (dac/storable_text.py), numbers jsonb would rewrite are written as jsonb gives them back, and
    dict keys that are not strings become the strings JSON makes of them. Such values reach audit
    details from a user's message (a routing reason quotes it) or a provider's answer (the model
    it names, its usage figures)."""
    content = record_content(record) if _keys_all_text(record["details"]) else None
    if content is None or _jsonb_would_rewrite(content) or unstorable_in_json(content):
        for name in CONTENT_FIELDS:
            record[name] = storable(_as_jsonb_gives_back(record[name]))
        content = record_content(record)
    return content


def _keys_all_text(value) -> bool:
    """Whether every dict in `value` has only str keys. json.dumps sorts other keys by value (9
    before 10, and fails on keys of mixed types), while the strings jsonb gives back sort as
    text ("10" before "9")."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _keys_all_text(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_keys_all_text(item) for item in value)
    return True


def _as_jsonb_gives_back(value):
    if isinstance(value, float):
        if not math.isfinite(value):
            return json.dumps(value)  # "NaN", "Infinity", "-Infinity", as text
        if value == 0:
            return 0.0
        # jsonb reads the decimal json.dumps wrote, exactly: 1e+23 is 10**23, not int(1e23).
        return int(Decimal(repr(value))) if abs(value) >= 1e16 else value
    if isinstance(value, dict):
        return {_json_key(key): _as_jsonb_gives_back(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_jsonb_gives_back(item) for item in value]
    return value


def _json_key(key) -> str:
    """The string json.dumps makes of a dict key (any other key type: its str())."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bool, int, float)) or key is None:
        return json.dumps(key)
    return str(key)


def row_content(row) -> str:
    """`canonical_content` of a saved row."""
    return canonical_content(**{name: getattr(row, name) for name in CONTENT_FIELDS})
