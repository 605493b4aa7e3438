"""Usage rolled up by the hour (UTC), from the runtimes' samples and lifecycle records.

Rollups are derived: ``billing.rollups.rollup`` recomputes an hour whole from the raw samples
(``provisioning.UsageSample``) and replica runs (``provisioning.ReplicaIncarnation``), so
running it twice, or again after a late sample, leaves exactly one right row. Gateways are
kept by name: usage outlives a deleted gateway.
"""

from django.db import models

from provisioning.models import TrafficCounters
from tenants.models import Tenant


class UsageHour(TrafficCounters):
    """What one gateway listener port answered in one hour."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_hours")
    gateway_name = models.CharField(max_length=63)
    hour = models.DateTimeField()  # its start, UTC
    port = models.PositiveIntegerField()

    class Meta:
        ordering = ["tenant", "gateway_name", "hour", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "gateway_name", "hour", "port"], name="one_usage_row_per_hour"
            )
        ]
        indexes = [models.Index(fields=["tenant", "hour"], name="usage_tenant_hour")]

    def __str__(self) -> str:
        return f"{self.gateway_name} port {self.port} at {self.hour:%Y-%m-%d %H:00}"


class ReplicaHour(models.Model):
    """How long a gateway's replicas of one size ran in one hour, in milliseconds."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="replica_hours")
    gateway_name = models.CharField(max_length=63)
    hour = models.DateTimeField()
    size = models.CharField(max_length=16)
    milliseconds = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["tenant", "gateway_name", "hour", "size"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "gateway_name", "hour", "size"], name="one_replica_row_per_hour"
            )
        ]
        indexes = [models.Index(fields=["tenant", "hour"], name="replica_tenant_hour")]

    def __str__(self) -> str:
        return f"{self.gateway_name} {self.size} at {self.hour:%Y-%m-%d %H:00}"
