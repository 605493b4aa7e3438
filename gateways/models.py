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


class Route(SpecResource):
    """An HTTP route of one gateway; ``spec`` is a Gateway API HTTPRoute spec.

    Names are unique per gateway (the gateway is the route's parent in the URL).
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="routes")

    class Meta:
        ordering = ["gateway", "name"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "name"], name="route_name_per_gateway")
        ]

    def __str__(self) -> str:
        return f"{self.gateway}/{self.name}"
