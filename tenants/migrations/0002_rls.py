from django.db import migrations

from dac.db.rls import enable_rls

# Two lookups must cross orgs before an org is known: "which orgs is this user in" (to pick
# the request's org) and "which token has this prefix" (to authenticate a bearer token).
# They run as SECURITY DEFINER functions that switch the operator flag on for their one query
# and restore it before returning (transaction-local, so an error rolls it back too); the
# runtime role itself never bypasses RLS.
FUNCTIONS = """
CREATE FUNCTION dac_user_orgs(p_user_id bigint)
RETURNS TABLE (org_id bigint, slug text, name text, role text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    previous text := coalesce(current_setting('app.operator', true), '');
BEGIN
    PERFORM set_config('app.operator', 'on', true);
    RETURN QUERY
        SELECT o.id, o.slug::text, o.name::text, m.role::text
        FROM tenants_membership m JOIN tenants_organization o ON o.id = m.org_id
        WHERE m.user_id = p_user_id
        ORDER BY o.name, o.id;
    PERFORM set_config('app.operator', previous, true);
END
$$;

CREATE FUNCTION dac_api_token_lookup(p_prefix text)
RETURNS TABLE (id bigint, org_id bigint, secret_hash text, expires_at timestamptz, revoked_at timestamptz, name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    previous text := coalesce(current_setting('app.operator', true), '');
BEGIN
    PERFORM set_config('app.operator', 'on', true);
    RETURN QUERY
        SELECT t.id, t.org_id, t.secret_hash::text, t.expires_at, t.revoked_at, t.name::text
        FROM tenants_apitoken t WHERE t.prefix = p_prefix;
    PERFORM set_config('app.operator', previous, true);
END
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS dac_user_orgs(bigint);
DROP FUNCTION IF EXISTS dac_api_token_lookup(text);
"""


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [
        enable_rls("tenants_organization", column="id"),
        enable_rls("tenants_membership"),
        enable_rls("tenants_apitoken"),
        enable_rls("tenants_useragentpermission"),
        migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
    ]
