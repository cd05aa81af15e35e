"""Writes for tenancy: orgs, users, memberships, API tokens, agent permissions."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.services import Actor, audit_record
from dac import invalidation
from dac.errors import Conflict, Forbidden, NotFound, ValidationFailed
from dac.storable_text import unstorable_reason
from tenants.context import Tenant, reset_tenant, set_tenant, tenant_context
from tenants.models import ApiToken, Membership, Organization, Role, User, UserAgentPermission
from tenants.selectors import Invitation, api_token_lookup, user_invitations

TOKEN_PREFIX = "dac_"
# last_used_at is a hint, not a ledger: writing it on every request would cost a write per call.
TOKEN_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _validate_slug(slug: str) -> str:
    clean = slugify(slug)
    if not clean or clean != slug or len(slug) > 60:
        raise ValidationFailed(
            f"{slug!r} is not a valid slug: use 1-60 lowercase letters, digits and hyphens.",
            detail={"slug": "invalid"},
        )
    return slug


def org_create(*, name: str, slug: str | None = None, owner: User | None = None, actor: Actor | None = None, is_demo: bool = False, expires_at: datetime | None = None) -> Organization:
    """Create an org (and its owner's membership). The id is drawn first so the insert can
    run with `app.org_id` already set to it: RLS checks the new row like any other."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ValidationFailed("Organization name must be 1-120 characters.", detail={"name": "invalid"})
    if reason := unstorable_reason("The organization name", name):
        raise ValidationFailed(reason, detail={"name": "unstorable"})
    slug = _validate_slug(slug) if slug else _free_slug(name)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('tenants_organization', 'id'))")
            org_id = cursor.fetchone()[0]
        with tenant_context(org_id):
            try:
                with transaction.atomic():
                    org = Organization.objects.create(id=org_id, name=name, slug=slug, is_demo=is_demo, expires_at=expires_at)
            except IntegrityError:
                raise Conflict(f"The slug {slug!r} is already taken.", detail={"slug": "taken"}) from None
            if owner is not None:
                Membership.objects.create(org=org, user=owner, role=Role.OWNER)
    audit_record(
        org_id=org.id,
        actor=actor or (Actor.user(owner) if owner else Actor.system()),
        event="org.created",
        target=f"org:{org.id}",
        details={"slug": slug, "name": name},
    )
    return org


def _free_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    return f"{base}-{secrets.token_hex(3)}"


def user_create(*, email: str, password: str | None = None, first_name: str = "") -> User:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed(f"{email!r} is not a valid email address.", detail={"email": "invalid"}) from None
    if password is not None:
        try:
            validate_password(password, User(email=email))
        except DjangoValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), detail={"password": exc.messages}) from None
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password, first_name=first_name)
    except IntegrityError:
        raise Conflict(f"A user with the email {email} already exists.", detail={"email": "taken"}) from None


def user_signup(*, email: str, password: str, org_name: str) -> tuple[User, Organization]:
    """Sign-up: a user and an org with them as owner, all or nothing."""
    with transaction.atomic():
        user = user_create(email=email, password=password)
        org = org_create(name=org_name or f"{email.split('@')[0]}'s org", owner=user)
    return user, org


def ensure_not_demo(org_id: int, what: str) -> None:
    """Demo sandboxes are for chatting: no members, tokens or keys (they are thrown away)."""
    if Organization.objects.filter(pk=org_id, is_demo=True).exists():
        raise Forbidden(f"The demo sandbox cannot {what}: sign up for an organization of your own.")


def membership_add(*, org_id: int, user: User, role: str, actor: Actor, invited: bool = False) -> Membership:
    """`invited`: the user already had an account, so the org becomes theirs once they accept
    (membership_invitation_answer); until then it is neither in their switcher nor open to them."""
    ensure_not_demo(org_id, "add members")
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", detail={"role": "invalid"})
    try:
        with transaction.atomic():
            membership = Membership.objects.create(org_id=org_id, user=user, role=role, accepted_at=None if invited else timezone.now())
    except IntegrityError:
        raise Conflict(f"{user.email} is already a member or invited.", detail={"user": "exists"}) from None
    audit_record(org_id=org_id, actor=actor, event="membership.added", target=f"user:{user.pk}",
                 details={"email": user.email, "role": role, "invited": invited})
    return membership


def member_add_by_email(*, org_id: int, email: str, role: str, password: str | None, actor: Actor) -> Membership:
    """The members page's and the API's "add a member": a new address gets an account with
    `password` and is a member at once; an address that has an account already is invited (the
    admin of one org cannot put a stranger's account in it unasked). One transaction."""
    email = (email or "").strip().lower()
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is not None:
            return membership_add(org_id=org_id, user=user, role=role, actor=actor, invited=True)
        if not password:
            raise ValidationFailed(f"No user {email} exists yet: give a password to create one.", detail={"password": "required"})
        user = user_create(email=email, password=password)
        return membership_add(org_id=org_id, user=user, role=role, actor=actor)


def membership_invitation_answer(*, user: User, membership_id: int, accept: bool) -> Invitation:
    """The invited user's answer: accepted, the org is theirs; declined, the invitation is gone.
    Only their own pending invitation (any other id is a 404, whoever's it is)."""
    invitation = next((i for i in user_invitations(user_id=user.pk) if i.membership_id == membership_id), None)
    if invitation is None:
        raise NotFound("No such invitation.")
    answer = {"org_id": invitation.org_id, "actor": Actor.user(user), "target": f"user:{user.pk}",
              "details": {"email": user.email, "role": invitation.role}}
    with tenant_context(invitation.org_id), transaction.atomic():
        pending = Membership.objects.select_for_update().filter(pk=membership_id, user=user, accepted_at__isnull=True)
        if accept and pending.update(accepted_at=timezone.now()):
            audit_record(event="membership.accepted", **answer)
        elif not accept and pending.delete()[0]:
            audit_record(event="membership.declined", **answer)
        else:
            raise NotFound("No such invitation.")
    return invitation


def _owners_count(org_id: int) -> int:
    return Membership.objects.filter(org_id=org_id, role=Role.OWNER).count()


def membership_role_change(*, membership: Membership, role: str, actor: Actor, actor_role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", detail={"role": "invalid"})
    if Role.OWNER in (role, membership.role) and actor_role != Role.OWNER:
        raise Forbidden("Only an owner can grant or take away the owner role.")
    with transaction.atomic():
        Membership.objects.select_for_update().filter(org_id=membership.org_id, role=Role.OWNER).exists()
        if membership.role == Role.OWNER and role != Role.OWNER and _owners_count(membership.org_id) <= 1:
            raise Conflict("An organization needs at least one owner: make someone else owner first.")
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
    audit_record(org_id=membership.org_id, actor=actor, event="membership.role_changed", target=f"user:{membership.user_id}", details={"from": old, "to": role})
    return membership


def membership_remove(*, membership: Membership, actor: Actor, actor_role: str) -> None:
    if membership.role == Role.OWNER and actor_role != Role.OWNER:
        raise Forbidden("Only an owner can remove an owner.")
    with transaction.atomic():
        # Lock the org's owners so two concurrent removals cannot leave none.
        list(Membership.objects.select_for_update().filter(org_id=membership.org_id, role=Role.OWNER))
        if membership.role == Role.OWNER and _owners_count(membership.org_id) <= 1:
            raise Conflict("The last owner cannot be removed.")
        membership.delete()
    audit_record(org_id=membership.org_id, actor=actor, event="membership.removed", target=f"user:{membership.user_id}", details={"email": membership.user.email})


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    plaintext: str


def api_token_create(*, org_id: int, name: str, created_by: User | None, actor: Actor, expires_at: datetime | None = None) -> CreatedToken:
    ensure_not_demo(org_id, "create API tokens")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("Token name must be 1-100 characters.", detail={"name": "invalid"})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("expires_at must be in the future.", detail={"expires_at": "past"})
    prefix = secrets.token_hex(6)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        org_id=org_id, name=name, prefix=prefix, secret_hash=_hash_secret(plaintext), created_by=created_by, expires_at=expires_at
    )
    audit_record(org_id=org_id, actor=actor, event="api_token.created", target=f"api_token:{token.pk}", details={"name": name, "prefix": prefix})
    return CreatedToken(token=token, plaintext=plaintext)


def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    _verified.clear()  # this worker stops accepting it at once
    invalidation.announce("tokens")  # and the others once it is committed
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(org_id=token.org_id, actor=actor, event="api_token.revoked", target=f"api_token:{token.pk}", details={"name": token.name, "prefix": token.prefix})
    return token


class TokenInvalid(Exception):
    """The presented token is unknown, wrong, revoked or expired (the message says which)."""


# A verified token is remembered for a few seconds per process, so a busy integration costs
# no database round trip per call. Revoking clears it here at once and in the other workers when
# they hear of it (dac/invalidation.py); without Redis, within TOKEN_CACHE_SECONDS.
_verified: dict[str, tuple[float, ApiToken]] = {}
invalidation.on_announcement("tokens", lambda _: _verified.clear())


def api_token_cached(plaintext: str) -> ApiToken | None:
    """The token if this process verified it within DAC_TOKEN_CACHE_SECONDS (no database: async
    callers try this before hopping to a thread for `api_token_authenticate`)."""
    return _cached_token(_hash_secret(plaintext))


def _cached_token(digest: str) -> ApiToken | None:
    hit = _verified.get(digest)
    if hit is not None and hit[0] > time.monotonic():
        token = hit[1]
        if token.expires_at is None or token.expires_at > timezone.now():
            return token
    return None


def api_token_authenticate(*, plaintext: str) -> ApiToken:
    """Check a bearer token in constant time and return it; sets nothing in context."""
    digest = _hash_secret(plaintext)
    token = _cached_token(digest)
    if token is not None:
        return token
    token = _api_token_verify(plaintext, digest)
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[digest] = (time.monotonic() + settings.DAC_TOKEN_CACHE_SECONDS, token)
    return token


def _api_token_verify(plaintext: str, digest: str) -> ApiToken:
    parts = plaintext.split("_") if plaintext.startswith(TOKEN_PREFIX) else []
    if len(parts) < 3:
        raise TokenInvalid("Malformed API token.")
    record = api_token_lookup(prefix=parts[1])
    if record is None or not hmac.compare_digest(record.secret_hash, digest):
        raise TokenInvalid("Invalid API token.")
    now = timezone.now()
    if record.revoked_at is not None:
        raise TokenInvalid("This API token has been revoked.")
    if record.expires_at is not None and record.expires_at <= now:
        raise TokenInvalid("This API token has expired.")
    tenant_token = set_tenant(Tenant(org_id=record.org_id))
    try:
        token = ApiToken.objects.get(pk=record.id)
        if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
    finally:
        reset_tenant(tenant_token)
    return token


def agent_permission_set(*, org_id: int, user: User, provider: str, allowed: bool, actor: Actor) -> UserAgentPermission:
    if not Membership.objects.filter(org_id=org_id, user=user).exists():
        raise NotFound("That user is not a member of this organization.")
    permission, _ = UserAgentPermission.objects.update_or_create(
        org_id=org_id, user=user, provider=provider, defaults={"allowed": allowed}
    )
    audit_record(org_id=org_id, actor=actor, event="agent_permission.changed", target=f"user:{user.pk}", details={"provider": provider, "allowed": allowed})
    return permission


def user_may_use_provider(*, user_id: int | None, provider: str) -> bool:
    """No row means allowed; API tokens (user_id None) act for the whole org."""
    if user_id is None:
        return True
    return not UserAgentPermission.objects.filter(user_id=user_id, provider=provider, allowed=False).exists()
