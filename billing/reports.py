"""The operators' revenue report: one month across every tenant.

Per tenant: the total of its final invoice for the month (or, for the running month, of the
upcoming computation), its plan and currency, and its requests and replica-hours from the
usage rollups. Totals are per currency and per (plan, currency): amounts in different
currencies are never added together. Top tenants are ranked by total within each currency.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Sum
from django.utils import timezone

from billing import invoices
from billing.models import Invoice, ReplicaHour, UsageHour
from billing.money import text
from config.errors import Conflict
from tenants.models import Tenant

TOP = 10


@dataclass(frozen=True)
class TenantRevenue:
    slug: str
    name: str
    plan: str
    currency: str
    total: Decimal
    final: bool  # from a final invoice (else the running month's draft, or nothing billed)
    invoice: str  # the final invoice's number, if any
    requests: int
    replica_hours: Decimal


def _usage(start: datetime, end: datetime) -> tuple[dict[int, int], dict[int, int]]:
    """(tenant id → requests, tenant id → replica milliseconds) in [start, end)."""
    classes = invoices.CLASSES
    traffic = (
        UsageHour.objects.filter(hour__gte=start, hour__lt=end)
        .values("tenant_id")
        .annotate(**{name: Sum(name) for name in classes})
        .order_by()
    )
    requests = {row["tenant_id"]: sum(row[name] or 0 for name in classes) for row in traffic}
    replica = dict(
        ReplicaHour.objects.filter(hour__gte=start, hour__lt=end)
        .values_list("tenant_id")
        .annotate(Sum("milliseconds"))
        .order_by()
    )
    return requests, replica


def _hours(milliseconds: int | None) -> Decimal:
    hours = Decimal(milliseconds or 0) / invoices.MS_PER_HOUR
    return hours.quantize(invoices.HOUR_PLACES, ROUND_HALF_UP)


def tenant_rows(month: date, now: datetime | None = None) -> list[TenantRevenue]:
    """Every tenant with a final invoice for the month, plus (for the running month) every
    tenant that exists now, priced from the upcoming computation."""
    now = now or timezone.now()
    start, end = invoices.month_bounds(month)
    running = invoices.month_of(now) == month
    requests, replica = _usage(start, end)
    rows = []
    billed = set()
    for invoice in Invoice.objects.filter(period_start=start).order_by("tenant_slug"):
        billed.add(invoice.tenant_id)
        rows.append(
            TenantRevenue(
                slug=invoice.tenant_slug,
                name=invoice.tenant_name,
                plan=invoice.plan_name,
                currency=invoice.currency,
                total=invoice.total,
                final=True,
                invoice=invoice.number,
                requests=requests.get(invoice.tenant_id, 0),
                replica_hours=_hours(replica.get(invoice.tenant_id)),
            )
        )
    if running:
        tenants = Tenant.objects.select_related("plan").exclude(pk__in=billed).order_by("slug")
        for tenant in tenants:
            try:
                draft = invoices.compute(tenant, start, end)
            except Conflict:  # the plan has no price book: nothing can be billed
                continue
            rows.append(
                TenantRevenue(
                    slug=tenant.slug,
                    name=tenant.display_name,
                    plan=tenant.plan.name,
                    currency=draft.currency,
                    total=draft.total,
                    final=False,
                    invoice="",
                    requests=requests.get(tenant.pk, 0),
                    replica_hours=_hours(replica.get(tenant.pk)),
                )
            )
    return sorted(rows, key=lambda row: row.slug)


def report(month: date, now: datetime | None = None) -> dict:
    """The month's report as the API answers it (amounts as text in their currency)."""
    rows = tenant_rows(month, now)
    per_currency: dict[str, Decimal] = {}
    per_plan: dict[tuple[str, str], tuple[Decimal, int]] = {}
    for row in rows:
        per_currency[row.currency] = per_currency.get(row.currency, Decimal(0)) + row.total
        total, count = per_plan.get((row.plan, row.currency), (Decimal(0), 0))
        per_plan[(row.plan, row.currency)] = (total + row.total, count + 1)
    top = sorted(rows, key=lambda row: (-row.total, row.slug))
    return {
        "month": f"{month:%Y-%m}",
        "running": invoices.month_of(now or timezone.now()) == month,
        "tenants": [_tenant_json(row) for row in rows],
        "topTenants": [_tenant_json(row) for row in top if row.total > 0][:TOP],
        "totalsByCurrency": [
            {"currency": code, "total": text(per_currency[code], code), "tenants": count}
            for code, count in sorted(_count_by_currency(rows).items())
        ],
        "totalsByPlan": [
            {"plan": plan, "currency": code, "total": text(total, code), "tenants": count}
            for (plan, code), (total, count) in sorted(per_plan.items())
        ],
    }


def _count_by_currency(rows: list[TenantRevenue]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.currency] = counts.get(row.currency, 0) + 1
    return counts


def _tenant_json(row: TenantRevenue) -> dict:
    return {
        "tenant": row.slug,
        "name": row.name,
        "plan": row.plan,
        "currency": row.currency,
        "total": text(row.total, row.currency),
        "final": row.final,
        "invoice": row.invoice or None,
        "requests": row.requests,
        "replicaHours": f"{row.replica_hours:f}",
    }
