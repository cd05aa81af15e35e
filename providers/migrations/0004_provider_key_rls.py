from django.db import migrations

from dac.db.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("providers", "0003_provider_key")]

    operations = [enable_rls("providers_providerkey")]
