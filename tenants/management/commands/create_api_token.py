from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from dac.errors import ApplicationError
from tenants.context import tenant_context
from tenants.management.commands._helpers import org_by_slug
from tenants.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for an organization and print it (once: only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("name")

    def handle(self, *args, org_slug, name, **options):
        org = org_by_slug(org_slug, command="create_api_token")
        try:
            with tenant_context(org):
                created = api_token_create(org_id=org.id, name=name, created_by=None, actor=Actor.system("manage.py create_api_token"))
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"Token {name!r} for {org.slug}; it will not be shown again:")
        self.stdout.write(created.plaintext)
