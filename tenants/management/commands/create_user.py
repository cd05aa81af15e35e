from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.services import Actor
from dac.errors import ApplicationError
from tenants.context import tenant_context
from tenants.management.commands._helpers import org_by_slug
from tenants.models import Role, User
from tenants.services import membership_add, user_create


class Command(BaseCommand):
    help = "Create a user (or reuse an existing one) and add them to an organization."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--org", required=True, help="slug of the organization")
        parser.add_argument("--role", default=Role.MEMBER, choices=Role.values)
        parser.add_argument("--password", default=None, help="omit for a user who cannot log in yet")

    def handle(self, *args, email, org, role, password, **options):
        organization = org_by_slug(org, command="create_user")
        try:
            with transaction.atomic():
                user = User.objects.filter(email=email.strip().lower()).first()
                created = user is None
                if created:
                    user = user_create(email=email, password=password)
                with tenant_context(organization):
                    membership_add(org_id=organization.id, user=user, role=role, actor=Actor.system("manage.py create_user"))
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        verb = "Created" if created else "Added existing"
        self.stdout.write(f"{verb} user {user.email} as {role} of {organization.slug}.")
