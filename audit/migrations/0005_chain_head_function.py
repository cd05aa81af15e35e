from django.db import migrations

# Lock an org's chain and read its head in one round trip. The lock comes first; the head is
# read by a later statement of this VOLATILE function, which takes a fresh snapshot (READ
# COMMITTED), so it sees what the previous holder of the lock committed. SECURITY INVOKER:
# row-level security applies as to any query of the caller. Lock keys as in
# audit/services.py (namespace 0x0DAC, the org id, 0 for the system chain).
FUNCTION = """
CREATE FUNCTION dac_audit_chain_head(p_org_id bigint)
RETURNS TABLE (seq bigint, hash text)
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(3500, coalesce(p_org_id, 0)::integer);
    IF p_org_id IS NULL THEN
        RETURN QUERY SELECT a.seq, a.hash::text FROM audit_auditlog a
            WHERE a.org_id IS NULL ORDER BY a.seq DESC LIMIT 1;
    ELSE
        RETURN QUERY SELECT a.seq, a.hash::text FROM audit_auditlog a
            WHERE a.org_id = p_org_id ORDER BY a.seq DESC LIMIT 1;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_audit_outlives_org")]

    operations = [migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS dac_audit_chain_head(bigint);")]
