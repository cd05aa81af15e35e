"""The hash chain: canonical content of an audit row, and the link hash over it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

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
    datetime, a Decimal) included, and the content is serialized once. Text PostgreSQL cannot
    store (U+0000, a lone surrogate) is replaced by U+FFFD before the row is hashed."""
    seq, prev_hash = head
    rows = []
    for record in records:
        seq += 1
        record["seq"], record["prev_hash"] = seq, prev_hash
        content = record_content(record)
        if unstorable_in_json(content):
            _make_storable(record)
            content = record_content(record)
        record["hash"] = link_hash(prev_hash, content)
        rows.append(f'{content[:-1]},"prev_hash":"{prev_hash}","hash":"{record["hash"]}"}}')
        prev_hash = record["hash"]
    return "[" + ",".join(rows) + "]"


def _make_storable(record: dict) -> None:
    """Replace what cannot be stored in the record's text by U+FFFD (dac/storable_text.py), before
    it is hashed: the row is then stored as hashed, instead of failing its append (and the answer
    with it). Such text reaches audit details from a user's message (a routing reason quotes it)
    or a provider's answer (the model it names)."""
    for name in CONTENT_FIELDS:
        record[name] = storable(record[name])


def row_content(row) -> str:
    """`canonical_content` of a saved row."""
    return canonical_content(**{name: getattr(row, name) for name in CONTENT_FIELDS})
