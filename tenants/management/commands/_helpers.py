"""Shared by the ops commands: find an org by slug through the audited operator path."""

from django.core.management.base import CommandError

from tenants.context import operator_context
from tenants.models import Organization


def org_by_slug(slug: str, *, command: str) -> Organization:
    with operator_context(reason=f"manage.py {command} {slug}", actor="manage.py"):
        org = Organization.objects.filter(slug=slug).first()
    if org is None:
        raise CommandError(f"No organization with slug {slug!r}.")
    return org
