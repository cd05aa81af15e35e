"""Delete expired demo sandboxes: `manage.py purge_demo` (run it hourly from cron or a timer)."""

from django.core.management.base import BaseCommand, CommandError

from tenants.context import operator_context
from tenants.demo import sandbox_purge_expired


class Command(BaseCommand):
    help = "Delete demo sandboxes past their expiry, with their threads, keys and visitor accounts."

    def handle(self, *args, **options):
        with operator_context(reason="purge_demo: delete expired demo sandboxes", actor="manage.py"):
            result = sandbox_purge_expired()
        self.stdout.write(
            self.style.SUCCESS(
                f"Purged {result.orgs} expired demo sandbox{'es' if result.orgs != 1 else ''} "
                f"and {result.users} visitor account{'s' if result.users != 1 else ''}."
            )
        )
        if result.failed:
            for org_id, reason in result.failed:
                self.stderr.write(f"org {org_id}: not deleted: {reason}")
            raise CommandError(f"{len(result.failed)} expired sandbox(es) could not be deleted; see above.")
