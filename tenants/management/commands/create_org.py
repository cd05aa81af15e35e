from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from dac.errors import ApplicationError
from tenants.services import org_create


class Command(BaseCommand):
    help = "Create an organization."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default=None)

    def handle(self, *args, slug, name, **options):
        try:
            org = org_create(name=name or slug, slug=slug, actor=Actor.system("manage.py create_org"))
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Created organization {org.slug} (id {org.id}).")
