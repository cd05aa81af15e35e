"""Invitations: a membership an admin made for a user who already had an account waits for
that user to accept it (`accepted_at` empty). Every membership made before this is accepted
(the column's default fills them). `dac_user_orgs` lists accepted memberships only;
`dac_user_invitations` lists a user's pending ones across orgs, as `dac_user_orgs` does its
orgs (SECURITY DEFINER, the operator flag for its one query)."""

import django.utils.timezone
from django.db import migrations, models

def _operator_function(create: str, signature: str, returns: str, query: str) -> str:
    """A lookup across orgs as 0002_rls writes them: SECURITY DEFINER, the operator flag on for
    its one query and restored before it returns."""
    return f"""
{create} FUNCTION {signature}
RETURNS TABLE ({returns})
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    previous text := coalesce(current_setting('app.operator', true), '');
BEGIN
    PERFORM set_config('app.operator', 'on', true);
    RETURN QUERY
        {query};
    PERFORM set_config('app.operator', previous, true);
END
$$;
"""


def _user_orgs(membership_filter: str) -> str:
    """dac_user_orgs (0002_rls) with `membership_filter` added to its WHERE."""
    return _operator_function(
        "CREATE OR REPLACE", "dac_user_orgs(p_user_id bigint)", "org_id bigint, slug text, name text, role text",
        "SELECT o.id, o.slug::text, o.name::text, m.role::text"
        " FROM tenants_membership m JOIN tenants_organization o ON o.id = m.org_id"
        f" WHERE m.user_id = p_user_id{membership_filter} ORDER BY o.name, o.id",
    )


USER_INVITATIONS = _operator_function(
    "CREATE", "dac_user_invitations(p_user_id bigint)",
    "membership_id bigint, org_id bigint, org_name text, role text, invited_at timestamptz",
    "SELECT m.id, o.id, o.name::text, m.role::text, m.created_at"
    " FROM tenants_membership m JOIN tenants_organization o ON o.id = m.org_id"
    " WHERE m.user_id = p_user_id AND m.accepted_at IS NULL ORDER BY m.created_at, m.id",
)

FORWARD = _user_orgs(" AND m.accepted_at IS NOT NULL") + USER_INVITATIONS
BACKWARD = "DROP FUNCTION IF EXISTS dac_user_invitations(bigint);" + _user_orgs("")


class Migration(migrations.Migration):

    dependencies = [("tenants", "0002_rls")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="accepted_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True,
                                       help_text="When the user accepted; empty: invited, not yet a member."),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
