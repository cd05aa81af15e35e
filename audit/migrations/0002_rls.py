from django.db import migrations

from dac.db.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    # Append-only for the runtime role is enforced by privileges (dac.db.grants).
    operations = [enable_rls("audit_auditlog")]
