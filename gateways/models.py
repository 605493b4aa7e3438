"""Tenant-facing gateway resources. Each has a user-written ``spec`` and a derived ``status``."""

from django.db import models

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
