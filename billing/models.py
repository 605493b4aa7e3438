"""Usage rolled up by the hour (UTC), from the runtimes' samples and lifecycle records.

Rollups are derived: ``billing.rollups.rollup`` recomputes an hour whole from the raw samples
(``provisioning.UsageSample``) and replica runs (``provisioning.ReplicaIncarnation``), so
running it twice, or again after a late sample, leaves exactly one right row. Gateways are
kept by name: usage outlives a deleted gateway.

Prices (``PriceBook``, one per plan), invoices (``Invoice`` and its ``InvoiceLine``s, final
and immutable once written) and budgets (``Budget``, ``BudgetAlert``): see docs/billing.md.
"""

from django.db import models
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from config.errors import Conflict
from provisioning.models import TrafficCounters
from tenants.models import Plan, Tenant


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


class UsageDay(TrafficCounters):
    """What one gateway answered and ran on one day (UTC): its hourly rows (``UsageHour``,
    ``ReplicaHour``) summed, every port and size together. Kept by the rollup, which recomputes
    a day whenever one of its hours changes, so a month's report reads 30 rows a gateway.
    Reports only: invoices read the hours (they need the sizes)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_days")
    gateway_name = models.CharField(max_length=63)
    day = models.DateTimeField()  # its start, UTC midnight
    replica_milliseconds = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["tenant", "gateway_name", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "gateway_name", "day"], name="one_usage_row_per_day"
            )
        ]
        indexes = [models.Index(fields=["tenant", "day"], name="usage_day_tenant_day")]

    def __str__(self) -> str:
        return f"{self.gateway_name} on {self.day:%Y-%m-%d}"


class PriceBook(models.Model):
    """What a plan's tenants pay: per replica-hour of each size, per million requests, per GB
    (10^9 bytes) sent, beyond monthly allowances. Written only by ``billing.prices``."""

    plan = models.OneToOneField(Plan, on_delete=models.CASCADE, related_name="price_book")
    currency = models.CharField(max_length=3, help_text="ISO 4217 code, e.g. USD")
    replica_hour = models.JSONField(
        default=dict, help_text="gateway size → price of one replica-hour, a decimal string"
    )
    per_million_requests = models.DecimalField(max_digits=14, decimal_places=6)
    per_gb_sent = models.DecimalField(
        max_digits=14, decimal_places=6, help_text="per GB sent, 1 GB = 10^9 bytes"
    )
    included_requests = models.PositiveBigIntegerField(default=0, help_text="per month")
    included_gb_sent = models.DecimalField(max_digits=16, decimal_places=3, default=0)
    included_replica_hours = models.DecimalField(max_digits=16, decimal_places=3, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plan__name"]

    def __str__(self) -> str:
        return f"prices of {self.plan.name} ({self.currency})"


class FinalInvoice(Conflict):
    code = "invoice_final"


class Invoice(models.Model):
    """One tenant's bill for one calendar month (UTC). Written once, final, never changed:
    a correction would be a credit note (a separate document), not an edit."""

    class Status(models.TextChoices):
        FINAL = "final"

    number = models.CharField(max_length=100, unique=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    tenant_slug = models.CharField(max_length=63, help_text="kept after the tenant is deleted")
    tenant_name = models.CharField(max_length=100, blank=True)
    plan_name = models.CharField(max_length=63, blank=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="exclusive: the next month's first instant")
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=18, decimal_places=4)
    total = models.DecimalField(max_digits=18, decimal_places=4)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.FINAL)
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["-period_start", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "period_start"], name="one_invoice_per_tenant_and_month"
            )
        ]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if not self._state.adding and self.pk is not None:
            raise FinalInvoice(f"invoice {self.number} is final and cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise FinalInvoice(f"invoice {self.number} is final and cannot be deleted")


class InvoiceLine(models.Model):
    """One priced line of an invoice. Created with its invoice (in bulk), never changed."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=200)
    quantity = models.DecimalField(max_digits=24, decimal_places=9)
    unit = models.CharField(max_length=32)
    unit_price = models.DecimalField(max_digits=14, decimal_places=6)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    gateway_name = models.CharField(max_length=63, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="one_line_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.description}"

    def save(self, *args, **kwargs):
        raise FinalInvoice("the lines of a final invoice cannot be changed")

    def delete(self, *args, **kwargs):
        raise FinalInvoice("the lines of a final invoice cannot be deleted")


@receiver(pre_delete, sender=Invoice)
@receiver(pre_delete, sender=InvoiceLine)
def _refuse_bulk_delete(sender, instance, **kwargs):
    """``QuerySet.delete()`` skips ``Model.delete()`` but not this signal."""
    raise FinalInvoice(f"{instance} is part of a final invoice and cannot be deleted")


class Budget(models.Model):
    """A tenant's monthly budget, in its price book's currency. No row: no budget."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="budget")
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"budget of {self.tenant_id}: {self.amount}"


class BudgetAlert(models.Model):
    """The running month's total crossed a share of the budget: recorded once per month."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="budget_alerts")
    month = models.DateField(help_text="the month's first day")
    threshold = models.PositiveSmallIntegerField(help_text="percent of the budget: 80 or 100")
    budget = models.DecimalField(max_digits=18, decimal_places=4)
    total = models.DecimalField(max_digits=18, decimal_places=4, help_text="spent at the time")
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-month", "threshold"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "month", "threshold"], name="one_alert_per_month_and_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.month:%Y-%m} {self.threshold}%"


class RollupState(models.Model):
    """Where the periodic rollup got to (one row): the hours before ``rolled_until`` are
    rolled up from every sample stored or changed before ``samples_seen_until`` (both times of
    its last run). The next run recomputes the recent hours and the hours of samples stored or
    changed since (late arrivals for older hours): nothing is missed, even after beat was down
    for a while, and a month's close recomputes only what changed."""

    rolled_until = models.DateTimeField(null=True)
    samples_seen_until = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"rolled up until {self.rolled_until}"


class AnalyticsCounts(models.Model):
    """What one gateway answered for one route and one consumer in one period, from its access
    log entries (``billing.analytics``): every request, not a sample. ``route`` and ``consumer``
    are ``""`` for requests that matched no route or named no consumer. ``latency`` and
    ``upstream_latency`` are {bucket lower bound in ms: count} of ``duration_ms`` and
    ``upstream_ms`` (two significant digits, like Envoy's histograms)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    gateway_name = models.CharField(max_length=63)
    route = models.CharField(max_length=63, blank=True, default="")
    consumer = models.CharField(max_length=255, blank=True, default="")
    start = models.DateTimeField()  # the period's start, UTC
    requests = models.BigIntegerField(default=0)  # every entry, those with no response too
    responses_1xx = models.BigIntegerField(default=0)
    responses_2xx = models.BigIntegerField(default=0)
    responses_3xx = models.BigIntegerField(default=0)
    responses_4xx = models.BigIntegerField(default=0)
    responses_5xx = models.BigIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    latency = models.JSONField(default=dict)
    upstream_latency = models.JSONField(default=dict)

    class Meta:
        abstract = True
        ordering = ["tenant", "gateway_name", "start", "route", "consumer"]


class AnalyticsMinute(AnalyticsCounts):
    """A minute's counts, kept ``GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS``."""

    class Meta(AnalyticsCounts.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "gateway_name", "start", "route", "consumer"],
                name="one_analytics_row_per_minute",
            )
        ]
        indexes = [models.Index(fields=["start"], name="analytics_minute_start")]

    def __str__(self) -> str:
        return (
            f"{self.gateway_name} {self.route!r} {self.consumer!r} at {self.start:%Y-%m-%d %H:%M}"
        )


class AnalyticsHour(AnalyticsCounts):
    """An hour's counts (the sum of its minutes), kept ``GANTRY_USAGE_SAMPLE_RETENTION_DAYS``."""

    class Meta(AnalyticsCounts.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "gateway_name", "start", "route", "consumer"],
                name="one_analytics_row_per_hour",
            )
        ]
        indexes = [models.Index(fields=["start"], name="analytics_hour_start")]

    def __str__(self) -> str:
        return (
            f"{self.gateway_name} {self.route!r} {self.consumer!r} at {self.start:%Y-%m-%d %H:00}"
        )


class AnalyticsState(models.Model):
    """Where the analytics rollup got to (one row): minutes before ``rolled_until`` are rolled
    up from every access log entry up to id ``entries_seen_id``; entries stored since with an
    older timestamp (late arrivals) have their minutes recomputed on the next run."""

    rolled_until = models.DateTimeField(null=True)
    entries_seen_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"analytics rolled up until {self.rolled_until}"
