from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from dac.errors import ApplicationError
from providers.services.limits import quota_limit_set
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
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{org.slug} / {provider or 'all providers'}: {limit.requests_per_day} requests, {limit.tokens_per_day} tokens per day."
        )
