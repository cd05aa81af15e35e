"""The quota fallback store: per (org, provider, UTC day) counters used while Redis is down.

Depends on 0005_provider_key_default_model, which was written in parallel with this one, so the
two 0005s form one chain rather than two leaves.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from dac.db.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0005_provider_key_default_model"),
        ("tenants", "0002_rls"),
    ]

    operations = [
        migrations.CreateModel(
            name="QuotaCounter",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("provider", models.CharField(help_text="A provider, or key_tests:HH for key tests.", max_length=32)),
                ("day", models.DateField(help_text="UTC day.")),
                ("base_requests", models.BigIntegerField(default=0)),
                ("base_tokens", models.BigIntegerField(default=0)),
                ("base_version", models.BigIntegerField(default=0, help_text="Redis' write count of the key when the base was seen.")),
                ("requests", models.BigIntegerField(default=0)),
                ("tokens", models.BigIntegerField(default=0)),
                ("moved", models.BooleanField(default=False, help_text="Already carried into Redis.")),
                ("overwrite", models.BooleanField(default=False, help_text="Reset during the outage: replaces Redis' count.")),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("org", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.organization")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("org", "provider", "day"), name="quota_counter_unique")],
            },
        ),
        enable_rls("providers_quotacounter"),
    ]
