"""factory-boy factories. Tenant rows are created inside their org's tenant context, so RLS
checks them exactly as it checks the app's own writes."""

from __future__ import annotations

import contextlib

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


def member(org: Organization, email: str, role: str = "member") -> User:
    """A user with a membership of `org`."""
    user = UserFactory(email=email)
    MembershipFactory(org=org, user=user, role=role)
    return user


def api_token_for(org: Organization, name: str = "t") -> str:
    """The plaintext of a new API token of `org` (made by the system, as an operator would)."""
    from audit.services import Actor
    from tenants.services import api_token_create

    with tenant_context(org):
        return api_token_create(org_id=org.pk, name=name, created_by=None, actor=Actor.system()).plaintext


@contextlib.contextmanager
def fake_provider_keyed(org: Organization, provider: str = "openai"):
    """A FakeProvider speaking `provider`'s wire format, with an active key of `org` pointing at
    it; the caller allows private base URLs (DAC_ALLOW_PRIVATE_BASE_URLS) while it is used."""
    from audit.services import Actor
    from providers.services.keys import provider_key_add
    from tests.fakes import FakeProvider

    fake = FakeProvider(provider).start()
    try:
        with tenant_context(org):
            provider_key_add(org_id=org.pk, provider=provider, api_key=f"sk-test-{provider}-0123456789abcdef", base_url=fake.base_url, actor=Actor.system())
        yield fake
    finally:
        fake.close()
