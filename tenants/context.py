"""The current tenant of this request, task or command.

One ContextVar holds the org id (and whether an operator is acting across orgs). The tenant
middleware, DRF token auth, `tenant_context()` and `operator_context()` set it and reset it in
`finally`. The database backend (`dac.db` (ENGINE)) copies it into the PostgreSQL session
setting `app.org_id` on whichever connection runs the next query, so row-level security
follows the ContextVar across threads, pooled connections and async tasks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tenant:
    org_id: int | None
    operator: bool = False


NO_TENANT = Tenant(org_id=None, operator=False)

_current: ContextVar[Tenant] = ContextVar("dac_tenant", default=NO_TENANT)


class TenantContextMissing(RuntimeError):
    """A tenant-scoped query ran with no org in context: a bug, never a user error."""


def current_tenant() -> Tenant:
    return _current.get()


def current_org_id() -> int | None:
    return _current.get().org_id


def require_org_id() -> int:
    org_id = _current.get().org_id
    if org_id is None:
        raise TenantContextMissing("No organization is set for this query.")
    return org_id


def set_tenant(tenant: Tenant):
    """Set the tenant and return the token for `reset_tenant` (middleware use)."""
    return _current.set(tenant)


def reset_tenant(token) -> None:
    _current.reset(token)


def _org_pk(org) -> int:
    return org if isinstance(org, int) else org.pk


@contextlib.contextmanager
def tenant_context(org) -> Iterator[None]:
    """Run the block as `org` (an Organization or its id): for commands, tasks and tests."""
    token = _current.set(Tenant(org_id=_org_pk(org)))
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def operator_context(*, reason: str, actor: str = "system", audit: bool = True) -> Iterator[None]:
    """Act across every org: the one unscoped path. Each use is written to the audit log.

    Only operator surfaces use it (the admin for superusers, ops commands); the RLS policy
    honours the flag through the `app.operator` session setting.
    """
    token = _current.set(Tenant(org_id=None, operator=True))
    try:
        if audit:
            from audit.services import audit_operator_bypass

            audit_operator_bypass(actor=actor, reason=reason)
        yield
    finally:
        _current.reset(token)
