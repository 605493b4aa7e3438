"""Tenants, plans, memberships, API tokens and the audit log."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.validators import validate_dns_label
from tenants.roles import Role


class Plan(models.Model):
    """A commercial plan: the quotas every tenant on it lives within."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    display_name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    max_gateways = models.PositiveIntegerField()
    max_replicas_per_gateway = models.PositiveIntegerField()
    max_routes_per_gateway = models.PositiveIntegerField()
    # Tenant-wide resources: each is compiled into every gateway of the tenant (or kept for
    # it), so an unbounded number of them would let one tenant grow everyone's config pushes.
    max_backends = models.PositiveIntegerField(default=200)
    max_certificates = models.PositiveIntegerField(default=100)
    max_consumers = models.PositiveIntegerField(default=1000)
    max_tokens_per_user = models.PositiveIntegerField(
        default=25, help_text="active API tokens one user may hold in one tenant"
    )
    allowed_sizes = models.JSONField(default=list, help_text="gateway sizes, e.g. small, medium")
    access_log_retention_days = models.PositiveIntegerField(
        default=7, help_text="days a gateway's access log entries are kept"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resource_version = models.PositiveBigIntegerField(default=1)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tenant(models.Model):
    """A customer organisation: owns gateways and everything under them."""

    slug = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    display_name = models.CharField(max_length=100)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    suspended = models.BooleanField(default=False, help_text="suspended tenants are read-only")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resource_version = models.PositiveBigIntegerField(default=1)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user's role in a tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.tenant}"


class ApiToken(models.Model):
    """A bearer token of one user for one tenant. Only its SHA-256 is stored."""

    prefix = models.CharField(
        max_length=16, unique=True, help_text="visible part, e.g. gty_ab12cd34"
    )
    digest = models.CharField(max_length=64, help_text="SHA-256 of the whole token")
    name = models.CharField(max_length=100, help_text="what the token is for")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"

    @property
    def active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class AuditEvent(models.Model):
    """One write: who did what to which object, with before/after (secrets redacted)."""

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    tenant_slug = models.CharField(max_length=63, blank=True, help_text="kept after deletion")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(max_length=150, help_text="username, or system:<component>")
    token_prefix = models.CharField(max_length=16, blank=True)
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=32)
    object_name = models.CharField(max_length=253)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "object_type", "object_name"]),
            models.Index(fields=["tenant", "actor_name"]),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.object_type}/{self.object_name}"
