"""Reading and verifying the audit chains."""

from __future__ import annotations

from dataclasses import dataclass

from audit.chain import GENESIS_HASH, link_hash, row_content
from audit.models import AuditLog


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def audit_chain_verify(*, org_id: int | None) -> tuple[int, ChainBreak | None]:
    """Walk one chain in seq order; return (rows checked, first broken link or None).

    Finds edited rows (hash mismatch), deleted or inserted rows (seq gap, prev_hash mismatch)
    and reordered rows (prev_hash not the previous row's hash).
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    rows = AuditLog.objects.filter(org_id=org_id).order_by("seq").iterator(chunk_size=2000)
    for row in rows:
        checked += 1
        if row.seq != expected_seq:
            return checked, ChainBreak(row.seq, f"expected seq {expected_seq}, found {row.seq} (a row was deleted or inserted)")
        if row.prev_hash != prev_hash:
            return checked, ChainBreak(row.seq, "prev_hash does not match the previous row's hash (a row was changed, removed or reordered)")
        if link_hash(prev_hash, row_content(row)) != row.hash:
            return checked, ChainBreak(row.seq, "content does not match its hash (the row was edited)")
        prev_hash = row.hash
        expected_seq += 1
    return checked, None
