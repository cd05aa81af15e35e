from django.db import migrations

# Append to an org's chain in one statement: take the chain's lock, check that its head is the
# one the caller linked the new rows to, insert them. Outside a transaction the call is its own
# transaction, so an append is one round trip, commit included, and the lock is held for that
# statement only; inside one (an audited change), lock and rows go with it. When the head has
# moved (another worker appended), nothing is written and the current head comes back for the
# caller to link again. The read after the lock sees the previous holder's commit: a VOLATILE
# function takes a fresh snapshot per statement (READ COMMITTED). SECURITY INVOKER, so row-level
# security applies as to any statement of the caller. Lock keys: namespace 0x0DAC and the org
# id (0 for the system chain).
APPEND = """
CREATE FUNCTION dac_audit_append(p_org_id bigint, p_expected_seq bigint, p_rows jsonb)
RETURNS TABLE (appended boolean, head_seq bigint, head_hash text, ids bigint[])
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_seq bigint;
    v_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(3500, coalesce(p_org_id, 0)::integer);
    IF p_org_id IS NULL THEN
        SELECT a.seq, a.hash INTO v_seq, v_hash FROM audit_auditlog a
            WHERE a.org_id IS NULL ORDER BY a.seq DESC LIMIT 1;
    ELSE
        SELECT a.seq, a.hash INTO v_seq, v_hash FROM audit_auditlog a
            WHERE a.org_id = p_org_id ORDER BY a.seq DESC LIMIT 1;
    END IF;
    v_seq := coalesce(v_seq, 0);
    IF p_expected_seq IS DISTINCT FROM v_seq THEN
        RETURN QUERY SELECT false, v_seq, coalesce(v_hash, repeat('0', 64)), NULL::bigint[];
        RETURN;
    END IF;
    RETURN QUERY
        WITH inserted AS (
            INSERT INTO audit_auditlog (org_id, seq, actor_type, actor_id, actor_label, event, target,
                details, request_hash, response_hash, created_at, prev_hash, hash)
            SELECT r.org_id, r.seq, r.actor_type, r.actor_id, r.actor_label, r.event, r.target,
                r.details, r.request_hash, r.response_hash, r.created_at, r.prev_hash, r.hash
            FROM jsonb_to_recordset(p_rows) AS r(
                org_id bigint, seq bigint, actor_type text, actor_id text, actor_label text, event text,
                target text, details jsonb, request_hash text, response_hash text, created_at timestamptz,
                prev_hash text, hash text)
            RETURNING audit_auditlog.id, audit_auditlog.seq
        )
        SELECT true, max(inserted.seq), NULL::text, array_agg(inserted.id ORDER BY inserted.seq) FROM inserted;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_audit_outlives_org")]

    operations = [migrations.RunSQL(APPEND, "DROP FUNCTION IF EXISTS dac_audit_append(bigint, bigint, jsonb);")]
