"""factory-boy factories. Tenant rows are created inside their org's tenant context, so RLS
checks them exactly as it checks the app's own writes."""

from __future__ import annotations

import factory

from tenants.context import tenant_context
from tenants.models import Membership, Organization, User

PASSWORD = "correct horse battery staple"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        org = kwargs.get("org")
        org_id = org.pk if org is not None else kwargs.get("org_id")
        with tenant_context(org_id):
            return super()._create(model_class, *args, **kwargs)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from tenants.services import org_create

        return org_create(name=kwargs["name"], slug=kwargs["slug"])


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)


class MembershipFactory(TenantFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = "member"
