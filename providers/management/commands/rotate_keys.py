from django.core.management.base import BaseCommand, CommandError

from providers.services.keys import provider_keys_rotate
from tenants.context import operator_context


class Command(BaseCommand):
    help = "Re-encrypt every stored provider key under the newest master key (online, idempotent)."

    def handle(self, *args, **options):
        with operator_context(reason="manage.py rotate_keys", actor="manage.py"):
            report = provider_keys_rotate()
        self.stdout.write(f"Rotated {report.rotated}, already current {report.already_current}, failed {len(report.failed)}.")
        if report.failed:
            ids = ", ".join(str(key_id) for key_id in report.failed)
            raise CommandError(f"These provider keys could not be decrypted with any master key: {ids}. Restore the old master key and run again.")
