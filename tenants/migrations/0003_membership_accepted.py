"""Invitations: a membership an admin made for a user who already had an account waits for
that user to accept it (`accepted_at` empty). Every membership made before this is accepted
(the column's default fills them). `dac_user_orgs` lists accepted memberships only;
`dac_user_invitations` lists a user's pending ones across orgs, as `dac_user_orgs` does its
orgs (SECURITY DEFINER, the operator flag for its one query)."""

import django.utils.timezone
from django.db import migrations, models

FUNCTIONS = """
CREATE OR REPLACE FUNCTION dac_user_orgs(p_user_id bigint)
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
        WHERE m.user_id = p_user_id AND m.accepted_at IS NOT NULL
        ORDER BY o.name, o.id;
    PERFORM set_config('app.operator', previous, true);
END
$$;

CREATE FUNCTION dac_user_invitations(p_user_id bigint)
RETURNS TABLE (membership_id bigint, org_id bigint, org_name text, role text, invited_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    previous text := coalesce(current_setting('app.operator', true), '');
BEGIN
    PERFORM set_config('app.operator', 'on', true);
    RETURN QUERY
        SELECT m.id, o.id, o.name::text, m.role::text, m.created_at
        FROM tenants_membership m JOIN tenants_organization o ON o.id = m.org_id
        WHERE m.user_id = p_user_id AND m.accepted_at IS NULL
        ORDER BY m.created_at, m.id;
    PERFORM set_config('app.operator', previous, true);
END
$$;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS dac_user_invitations(bigint);
CREATE OR REPLACE FUNCTION dac_user_orgs(p_user_id bigint)
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
"""


class Migration(migrations.Migration):

    dependencies = [("tenants", "0002_rls")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="accepted_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True,
                                       help_text="When the user accepted; empty: invited, not yet a member."),
        ),
        migrations.RunSQL(FUNCTIONS, BACKWARD),
    ]
