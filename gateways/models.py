"""Tenant-facing gateway resources. Each has a user-written ``spec`` and a derived ``status``."""

from django.db import models

from config.crypto import EncryptedTextField
from config.validators import validate_dns_label
from tenants.models import Tenant


class SpecResource(models.Model):
    """Common columns of every spec/status resource.

    ``generation`` counts spec changes (what a controller must act on); ``resource_version``
    counts every change, status included, and is what optimistic concurrency compares.
    """

    name = models.CharField(max_length=63, validators=[validate_dns_label])
    spec = models.JSONField(default=dict)
    status = models.JSONField(default=dict, blank=True)
    generation = models.PositiveBigIntegerField(default=1)
    resource_version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Gateway(SpecResource):
    """A gateway instance: listeners served by a set of Envoy replicas."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="gateways")

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="gateway_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class Certificate(SpecResource):
    """A PEM certificate chain and, for serving TLS, its private key.

    ``spec`` holds the chain (public); the key lives only in ``private_key``, encrypted at rest,
    and is never returned by the API or written to the audit log. A chain without a key can
    only serve as a CA bundle (a backend's ``tls.caCertificateRefs``).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="certificates")
    private_key = EncryptedTextField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="certificate_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class Backend(SpecResource):
    """Where routes send traffic: static IP endpoints or DNS names (Envoy Gateway's Backend)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="backends")

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="backend_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class JsonDigest(models.Func):
    """SHA-256 (hex) of a JSON column's text, as the database writes it: PostgreSQL's
    ``jsonb`` text is canonical, so equal specs have equal digests (SQLite's ``SHA256`` is
    the function Django registers on every connection)."""

    output_field = models.CharField(max_length=64)

    def as_postgresql(self, compiler, connection, **extra):
        # SHA-256 of the UTF-8 text (gateways/migrations/0009_route_spec_digest.py).
        return self.as_sql(compiler, connection, function="gantry_json_digest", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="SHA256", **extra)


class RefNotPermitted(models.Func):
    """Whether a route's status has a ``RefNotPermitted`` condition: PostgreSQL tests the
    ``jsonb`` by containment, SQLite searches its text (any mention: a superset; the rare
    reader that rewrites the status checks it again)."""

    output_field = models.BooleanField()

    def as_postgresql(self, compiler, connection, **extra):
        contains = """'{"conditions": [{"reason": "RefNotPermitted"}]}'::jsonb"""
        template = f"(%(expressions)s @> {contains})"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        template = "(instr(%(expressions)s, 'RefNotPermitted') > 0)"
        return self.as_sql(compiler, connection, template=template, **extra)


class Route(SpecResource):
    """An HTTP route of one gateway; ``spec`` is a Gateway API HTTPRoute spec.

    Names are unique per gateway (the gateway is the route's parent in the URL).
    """

    class Kind(models.TextChoices):
        HTTP = "HTTPRoute"
        GRPC = "GRPCRoute"
        TCP = "TCPRoute"
        TLS = "TLSRoute"
        DUBBO = "DubboRoute"  # a Gantry kind: Dubbo calls on Dubbo listeners (docs/dubbo.md)

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="routes")
    # HTTPRoute or GRPCRoute (its spec a Gateway API GRPCRoute spec), TCPRoute or TLSRoute
    # (docs/tcp-tls.md). Names are unique per gateway whatever the kind, and the route quota
    # counts every kind. The kind never changes.
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.HTTP)
    # The spec's digest, computed by the database on every write whatever writes it: a
    # reconcile reads the specs of a big gateway's changed routes only (``provisioning.desired``).
    spec_digest = models.GeneratedField(
        expression=JsonDigest("spec"), output_field=models.CharField(max_length=64),
        db_persist=True,
    )  # fmt: skip
    # Computed by the database too: the one thing a reconcile reads of a route's status.
    ref_not_permitted = models.GeneratedField(
        expression=RefNotPermitted("status"), output_field=models.BooleanField(),
        db_persist=True,
    )  # fmt: skip

    class Meta:
        ordering = ["gateway", "name"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "name"], name="route_name_per_gateway")
        ]
        indexes = [
            # Everything a reconcile reads of a gateway's routes, in the order it reads them:
            # PostgreSQL answers from the index alone, without reading the rows' specs and
            # statuses off the table or sorting (provisioning.desired).
            models.Index(
                fields=["gateway", "created_at", "name"],
                include=["id", "kind", "spec_digest", "ref_not_permitted"],
                name="route_load",
            )
        ]

    def __str__(self) -> str:
        return f"{self.gateway}/{self.name}"


class Consumer(SpecResource):
    """An API client of a tenant: what SecurityPolicies allow, by name, through its credentials.

    Requests that authenticate as a consumer carry its name upstream (``x-gantry-consumer``).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="consumers")

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="consumer_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class Credential(models.Model):
    """One credential of a consumer: an API key or a basic-auth user.

    ``secret`` holds what the gateway needs and nothing more, encrypted at rest: the API key
    itself (Envoy compares keys), or the password's htpasswd SHA hash (``{SHA}…``, what Envoy's
    basic_auth filter takes; the password itself is not kept). Never returned after creation.
    """

    class Type(models.TextChoices):
        API_KEY = "api-key"
        BASIC_AUTH = "basic-auth"

    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, related_name="credentials")
    # The public id: ``gak_…`` (the first characters of the key itself) or ``gba_…``.
    key_id = models.CharField(max_length=16, unique=True)
    type = models.CharField(max_length=16, choices=Type.choices)
    username = models.CharField(max_length=63, blank=True)  # basic-auth only
    secret = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["consumer", "created_at", "key_id"]

    def __str__(self) -> str:
        return f"{self.consumer}/{self.key_id}"


class Policy(SpecResource):
    """A policy of one gateway, Envoy Gateway's vocabulary: ``kind`` is SecurityPolicy,
    BackendTrafficPolicy or ClientTrafficPolicy and ``spec`` names its targets (the gateway, a
    listener, a route).

    Names are unique per gateway, whatever the kind. The kind never changes.
    """

    class Kind(models.TextChoices):
        SECURITY = "SecurityPolicy"
        BACKEND_TRAFFIC = "BackendTrafficPolicy"
        CLIENT_TRAFFIC = "ClientTrafficPolicy"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="policies")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # What the policy's Envoy filters need and nobody reads back, as JSON, encrypted (Fernet,
    # GANTRY_ENCRYPTION_KEYS): oidc's client secret and the HMAC key of its cookies.
    secrets = EncryptedTextField(null=True, blank=True)

    class Meta:
        ordering = ["gateway", "name"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["gateway", "name"], name="policy_name_per_gateway")
        ]

    def __str__(self) -> str:
        return f"{self.gateway}/{self.name}"
