from django.db import migrations

from dac.db.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("metrics", "0001_initial")]

    operations = [
        enable_rls("metrics_requestmetric"),
        enable_rls("metrics_providercallmetric"),
        enable_rls("metrics_requestrollup"),
        enable_rls("metrics_providerrollup"),
        enable_rls("metrics_rollupstate"),
    ]
