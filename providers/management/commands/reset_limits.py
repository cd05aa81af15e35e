from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from dac.errors import ApplicationError
from providers.adapters import PROVIDER_NAMES
from providers.services.quota import QuotaStoreUnreachable, quota_reset_counters
from tenants.context import operator_context, tenant_context
from tenants.management.commands._helpers import org_by_slug


class Command(BaseCommand):
    help = "Reset today's quota counters (UTC day) of one organization, or of every one when none is named."

    def add_arguments(self, parser):
        parser.add_argument("org_slug", nargs="?", default=None, help="omit to reset every organization")
        parser.add_argument("--provider", default=None, help=f"one of {', '.join(PROVIDER_NAMES)}; omit for all (and key tests)")
        parser.add_argument(
            "--redis-down", action="store_true",
            help="Redis is down for every worker: reset the counts they keep in PostgreSQL meanwhile "
                 "(they replace Redis's when it returns). Without it, a reset that cannot reach Redis changes nothing.")

    def handle(self, *args, org_slug, provider, redis_down, **options):
        if provider is not None and provider not in PROVIDER_NAMES:
            raise CommandError(f"Unknown provider {provider!r}; use one of {', '.join(PROVIDER_NAMES)}.")
        actor = Actor.system("manage.py reset_limits")
        try:
            if org_slug:
                org = org_by_slug(org_slug, command="reset_limits")
                slugs = {org.id: org.slug}
                with tenant_context(org):
                    reset = quota_reset_counters(org_id=org.id, provider=provider, actor=actor, redis_down=redis_down)
            else:
                with operator_context(reason="manage.py reset_limits (every organization)", actor="manage.py"):
                    from tenants.models import Organization

                    slugs = dict(Organization.objects.values_list("id", "slug"))
                    reset = quota_reset_counters(org_id=None, provider=provider, actor=actor, redis_down=redis_down)
        except QuotaStoreUnreachable as exc:
            raise CommandError(
                f"{exc.message} Run it where Redis (REDIS_URL) is reachable; if Redis is down for every worker, "
                "add --redis-down to reset the counts they keep in PostgreSQL meanwhile.") from None
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        for counter in reset:
            if counter.provider.startswith("key_tests:"):  # the hourly allowance of key tests
                hour = counter.provider.removeprefix("key_tests:")  # HH, UTC
                self.stdout.write(f"{slugs.get(counter.org_id, counter.org_id)} / key tests of {hour}:00-{hour}:59 UTC: "
                                  f"{counter.requests:,} tests -> 0")
                continue
            self.stdout.write(
                f"{slugs.get(counter.org_id, counter.org_id)} / {counter.provider}: "
                f"{counter.requests:,} requests, {counter.tokens:,} tokens -> 0"
            )
        scope = org_slug or "every organization"
        which = provider or "all providers"
        if reset:
            self.stdout.write(f"Reset {len(reset)} counter(s) of {scope} ({which}) for today (UTC).")
        else:
            self.stdout.write(f"Nothing to reset: {scope} has no counters in use today ({which}).")
