from django.db import migrations

from dac.db.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]

    operations = [enable_rls("routing_routingsettings")]
