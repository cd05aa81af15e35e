"""`manage.py rollup_metrics`: roll up every org's raw metric rows now and apply retention.

Not required for correctness (rollups also run after each flush and on read when due); run it
from cron to keep reads fast for orgs nobody looks at and to prune their old rows.
"""

from django.core.management.base import BaseCommand

from metrics.services import metrics_rollup_all


class Command(BaseCommand):
    help = "Roll up raw request and provider-call metrics into minute/hour buckets; prune by retention."

    def handle(self, *args, **options):
        results = metrics_rollup_all()
        ran = sum(1 for done in results.values() if done)
        skipped = len(results) - ran
        self.stdout.write(f"Rolled up {ran} org(s)" + (f"; {skipped} skipped (another process was rolling them up)." if skipped else "."))
