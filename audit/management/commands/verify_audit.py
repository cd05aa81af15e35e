"""`manage.py verify_audit [<org-slug> | --org-id N]`: walk each audit chain and report the first broken link.

With no slug: every org's chain, the chains of deleted orgs (an expired demo sandbox: its rows
stay, the record of what happened) and the system chain (org-less events: operator bypasses,
failed logins). Prints per chain the number of entries and the head (seq and hash: keep the heads
somewhere the database's owner cannot write, and a later run also shows a truncated tail), or
the first broken link; exits non-zero if any chain is broken. `--org-id` names one chain by
the org's id, which also reaches a deleted org's.
"""

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditLog
from audit.selectors import ChainStatus, audit_chain_status
from tenants.context import operator_context, tenant_context
from tenants.management.commands._helpers import org_by_slug
from tenants.models import Organization


class Command(BaseCommand):
    help = "Verify the audit hash chains (all orgs and the system chain, or one org) and report breaks."

    def add_arguments(self, parser):
        parser.add_argument("org_slug", nargs="?", help="Only this organization's chain.")
        parser.add_argument("--org-id", type=int, help="Only the chain of the organization with this id, deleted or not.")

    def handle(self, *args, org_slug=None, org_id=None, **options):
        results: list[tuple[str, ChainStatus]] = []
        if org_slug and org_id is not None:
            raise CommandError("Name one chain: an org's slug or --org-id, not both.")
        if org_id is not None:
            with operator_context(reason=f"manage.py verify_audit --org-id {org_id}", actor="manage.py"):
                slug = Organization.objects.filter(pk=org_id).values_list("slug", flat=True).first()
                if slug is None and not AuditLog.objects.filter(org_id=org_id).exists():
                    raise CommandError(f"No organization {org_id} and no audit chain of one.")
            with tenant_context(org_id):
                results.append((f"{slug} (org {org_id})" if slug else f"deleted org {org_id}", audit_chain_status(org_id=org_id)))
        elif org_slug:
            org = org_by_slug(org_slug, command="verify_audit")
            with tenant_context(org):
                results.append((f"{org.slug} (org {org.pk})", audit_chain_status(org_id=org.pk)))
        else:
            with operator_context(reason="manage.py verify_audit", actor="manage.py"):
                slugs = dict(Organization.objects.values_list("pk", "slug"))
                chains = AuditLog.objects.exclude(org_id=None).order_by().values_list("org_id", flat=True).distinct()
                for pk in sorted(set(slugs) | set(chains)):
                    name = f"{slugs[pk]} (org {pk})" if pk in slugs else f"deleted org {pk}"
                    results.append((name, audit_chain_status(org_id=pk)))
                results.append(("system chain", audit_chain_status(org_id=None)))
        broken = 0
        for name, status in results:
            if status.ok:
                self.stdout.write(f"{name}: {status.count} entries, OK, head #{status.head_seq} {status.head_hash}")
            else:
                broken += 1
                self.stdout.write(
                    f"{name}: {status.count} entries, BROKEN at seq {status.broken.seq}: {status.broken.reason}"
                )
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken.")
        self.stdout.write(f"All {len(results)} chain(s) verified.")
