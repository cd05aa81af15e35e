"""Seed a demo org and user for `make run` (idempotent) and print how to sign in."""

from django.core.management.base import BaseCommand

from audit.services import Actor
from tenants.context import operator_context, tenant_context
from tenants.models import Membership, Organization, Role, User
from tenants.services import org_create

DEMO_EMAIL = "demo@dac.local"
DEMO_PASSWORD = "dac-demo-password"
DEMO_SLUG = "demo-org"


class Command(BaseCommand):
    help = "Create the demo organization and user when missing, and print the sign-in."

    def handle(self, *args, **options):
        with operator_context(reason="seed_demo", actor="manage.py", audit=False):
            org = Organization.objects.filter(slug=DEMO_SLUG).first()
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_EMAIL, password=DEMO_PASSWORD, first_name="Demo")
        if org is None:
            org = org_create(name="Demo Org", slug=DEMO_SLUG, owner=user, actor=Actor.system("seed_demo"))
        with tenant_context(org):
            Membership.objects.get_or_create(org=org, user=user, defaults={"role": Role.OWNER})
        self.stdout.write(self.style.SUCCESS(f"Demo sign-in: {DEMO_EMAIL} / {DEMO_PASSWORD} (org {org.name})"))
