from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from dac.errors import ApplicationError
from providers.services.limits import effective_limits, quota_limit_set
from tenants.context import tenant_context
from tenants.management.commands._helpers import org_by_slug


class Command(BaseCommand):
    help = "Set an organization's daily request and token limits (all providers, or one)."

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--provider", default="", help="one provider; omit for every provider")
        parser.add_argument("--requests", default=None, help="requests per UTC day")
        parser.add_argument("--tokens", default=None, help="tokens per UTC day")

    def handle(self, *args, org_slug, provider, requests, tokens, **options):
        if requests is None and tokens is None:
            raise CommandError("Give --requests, --tokens or both.")
        org = org_by_slug(org_slug, command="set_limits")
        try:
            with tenant_context(org):
                limit = quota_limit_set(
                    org_id=org.id, provider=provider, requests_per_day=requests, tokens_per_day=tokens,
                    actor=Actor.system("manage.py set_limits"),
                )
                effective = effective_limits(org_id=org.id, provider=provider)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        shown = [f"{value:,} {unit}" + ("" if own is not None else " (not set here: the org-wide limit or the default)")
                 for value, own, unit in zip(effective, (limit.requests_per_day, limit.tokens_per_day), ("requests", "tokens"))]
        self.stdout.write(f"{org.slug} / {provider or 'all providers'}: {shown[0]} and {shown[1]} per day.")
