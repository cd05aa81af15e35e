from __future__ import annotations

from django.core.exceptions import ValidationError
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils import timezone

from tenants.context import current_tenant


class TenantManager(models.Manager):
    """Scopes every query to the current org; refuses to run with none.

    The database enforces the same rule with row-level security; this manager makes the ORM
    say so early and lets PostgreSQL use the org_id indexes. Operators (`operator_context`)
    see every org.
    """

    org_field = "org_id"

    def get_queryset(self):
        tenant = current_tenant()
        queryset = super().get_queryset()
        if tenant.operator:
            return queryset
        if tenant.org_id is None:
            from tenants.context import TenantContextMissing

            raise TenantContextMissing(f"{self.model.__name__} queried with no organization set.")
        return queryset.filter(**{self.org_field: tenant.org_id})


class OrganizationManager(TenantManager):
    org_field = "id"


class Organization(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    context_window = models.PositiveSmallIntegerField(
        default=6, help_text="How many earlier messages of a thread are sent with each message."
    )
    is_demo = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Demo sandboxes expire.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrganizationManager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person: signs in with an email address, belongs to orgs through memberships."""

    username = None
    email = models.EmailField(unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class TenantModel(models.Model):
    """Base for every tenant-owned table: an org column, scoped manager, RLS in migrations."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True


def same_org(row: TenantModel, field: str) -> None:
    """For a model's `clean` (the admin's forms): a ValidationError on `field` when it points at
    a row of another org than `row`'s. PostgreSQL refuses such a row as well (composite foreign
    keys); this says so on the form instead of a 500."""
    related = getattr(row, field) if getattr(row, f"{field}_id") is not None else None
    if related is not None and row.org_id is not None and related.org_id != row.org_id:
        raise ValidationError({field: f"This {field} belongs to another organization ({related.org}); pick one of {row.org}'s."})


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Membership(TenantModel):
    """A user in an org. One added by another org's admin while they already had an account is
    an invitation until they accept it (`accepted_at` None): the org is not theirs meanwhile
    (not in their switcher, no access), so nobody is put in a stranger's org unasked."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(default=timezone.now, null=True, blank=True,
                                       help_text="When the user accepted; empty: invited, not yet a member.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="membership_unique_user")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} in org {self.org_id} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)


class ApiToken(TenantModel):
    """A bearer token for the API; only its sha256 is stored, the secret is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (dac_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class UserAgentPermission(TenantModel):
    """Whether a member may use a provider. No row means allowed."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=32)
    allowed = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "user", "provider"], name="agent_permission_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} {'may' if self.allowed else 'may not'} use {self.provider}"
