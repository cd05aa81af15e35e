"""Rebuild org memory from the database, or drain the indexing backlog.

    manage.py reindex_memory                 # every org (operator bypass, audited), then drop orphans
    manage.py reindex_memory org-a           # one org
    manage.py reindex_memory --pending       # only retry the backlog (every row, backoff or not)

In embedded local mode the Qdrant folder belongs to one process: stop the server first, or use
QDRANT_URL (docs/memory.md).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.context import operator_context
from tenants.management.commands._helpers import org_by_slug
from tenants.models import Organization
from threads.memory import store
from threads.memory.services import process_backlog, prune_orphans, reindex_org
from threads.memory.store import StoreUnavailable
from threads.models import MemoryBacklog


class Command(BaseCommand):
    help = "Rebuild org memory (Qdrant) from the database, or with --pending only retry the indexing backlog."

    def add_arguments(self, parser):
        parser.add_argument("slug", nargs="?", help="One organization (default: all).")
        parser.add_argument("--pending", action="store_true", help="Only drain the backlog; do not rebuild.")

    def handle(self, *args, slug: str | None = None, pending: bool = False, **options):
        if slug:
            org = org_by_slug(slug, command="reindex_memory")
            orgs = [(org.pk, org.slug)]
        else:
            with operator_context(reason="manage.py reindex_memory (all orgs)", actor="manage.py"):
                orgs = list(Organization.objects.order_by("pk").values_list("pk", "slug"))
                if pending:
                    waiting = set(MemoryBacklog.objects.values_list("org_id", flat=True).distinct())
                    orgs = [(pk, s) for pk, s in orgs if pk in waiting]
        if pending and not orgs:
            self.stdout.write("The backlog is empty: nothing waits to be indexed.")
        try:
            for org_id, org_slug in orgs:
                self._drain(org_id, org_slug) if pending else self._rebuild(org_id, org_slug)
            if not slug and not pending:
                prune_orphans(live_org_ids=[pk for pk, _ in orgs])
        except StoreUnavailable as exc:
            raise CommandError(f"Qdrant is unavailable: {exc}") from None
        finally:
            store.release_local()  # free the embedded folder's lock for the server

    def _rebuild(self, org_id: int, slug: str) -> None:
        result = reindex_org(org_id=org_id)
        if result.skipped:
            self.stdout.write(f"{slug}: skipped ({result.skipped})")
            return
        line = f"{slug}: {result.indexed} messages indexed, {result.removed} stale points removed"
        if result.dense_failed:
            line += f"; {result.dense_failed} without dense vectors ({'; '.join(result.errors)}), left in the backlog"
        self.stdout.write(self.style.SUCCESS(line))

    def _drain(self, org_id: int, slug: str) -> None:
        done = failed = 0
        while True:
            drained = process_backlog(org_id=org_id, due_only=False)
            done += drained.done
            failed += drained.failed
            if drained.failed and not drained.done:
                raise StoreUnavailable(drained.error)
            if not drained.more:
                break
        self.stdout.write(self.style.SUCCESS(f"{slug}: {done} backlog items applied, {failed} failed"))
