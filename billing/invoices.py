"""Invoices: a tenant's usage of one calendar month (UTC), priced by its plan's price book.

Lines, for all the tenant's gateways together (per-gateway figures are in the usage API):
- one per gateway size that ran: replica-hours (milliseconds / 3,600,000, stated to 6 decimal
  places, half-up), after the plan's included replica-hours, which are taken from the sizes
  in size order (small first);
- requests, per million, after the included requests;
- GB sent (10^9 bytes), after the included GB.
Each amount is quantity × unit price rounded half-up to the currency's minor unit
(``billing.money``); subtotal = sum of the amounts; total = subtotal (no tax yet).

``close_period`` writes the month's final invoice once (a second call finds it); the running
month is ``upcoming``: computed on the fly, never stored.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from billing import rollups
from billing.models import Invoice, InvoiceLine, ReplicaHour, UsageHour
from billing.money import round_amount
from billing.prices import Terms, terms_for
from config.errors import ValidationFailed
from gateways.sizes import SIZES
from tenants.models import Tenant

log = logging.getLogger(__name__)

MS_PER_HOUR = 3_600_000
HOUR_PLACES = Decimal("0.000001")
CLASSES = ("responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx", "responses_5xx")


@dataclass(frozen=True)
class Usage:
    replica_ms: dict[str, int]  # size → milliseconds
    requests: int
    bytes_sent: int


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    gateway_name: str = ""


@dataclass
class Draft:
    """An invoice's figures, stored (``close_period``) or not (``upcoming``)."""

    tenant: Tenant
    period_start: datetime
    period_end: datetime
    currency: str
    lines: list[Line] = field(default_factory=list)

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.subtotal  # no tax is charged yet


def parse_month(text: str, path: str = "month") -> date:
    """``YYYY-MM`` → the month's first day; ValidationFailed naming ``path`` otherwise."""
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except (ValueError, AttributeError):
        message = f"{text!r} is not a month: YYYY-MM, e.g. 2026-11"
        raise ValidationFailed.one(path, message) from None


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return start, datetime(following.year, following.month, 1, tzinfo=UTC)


def month_of(moment: datetime) -> date:
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def previous_month(moment: datetime) -> date:
    return month_of(month_bounds(month_of(moment))[0] - timedelta(days=1))


def usage(tenant: Tenant, start: datetime, end: datetime) -> Usage:
    """The tenant's rolled-up usage in [start, end), all gateways together."""
    traffic = UsageHour.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end).aggregate(
        **{name: Sum(name) for name in CLASSES}, bytes_sent=Sum("bytes_sent")
    )
    replica_ms = dict(
        ReplicaHour.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end)
        .values_list("size")
        .annotate(Sum("milliseconds"))
        .order_by()
    )
    return Usage(
        replica_ms={size: ms for size, ms in replica_ms.items() if ms},
        requests=sum(traffic[name] or 0 for name in CLASSES),
        bytes_sent=traffic["bytes_sent"] or 0,
    )


def _line(description: str, quantity: Decimal, unit: str, price: Decimal, terms: Terms) -> Line:
    return Line(description, quantity, unit, price, round_amount(quantity * price, terms.currency))


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def price(terms: Terms, used: Usage) -> list[Line]:
    """The invoice lines for ``used`` under ``terms``: pure arithmetic, no database."""
    lines = []
    allowance = terms.included_replica_hours
    order = list(SIZES) + sorted(set(used.replica_ms) - set(SIZES))
    for size in order:
        milliseconds = used.replica_ms.get(size, 0)
        if not milliseconds:
            continue
        hours = (Decimal(milliseconds) / MS_PER_HOUR).quantize(HOUR_PLACES, ROUND_HALF_UP)
        covered = min(allowance, hours)
        allowance -= covered
        description = f"Replica-hours, {size} ({_number(hours)} h"
        description += f", {_number(covered)} h included)" if covered else ")"
        unit_price = terms.replica_hour.get(size, Decimal(0))
        lines.append(_line(description, hours - covered, "replica-hour", unit_price, terms))
    billable = max(0, used.requests - terms.included_requests)
    description = f"Requests ({used.requests:,}"
    if terms.included_requests:
        description += f", {terms.included_requests:,} included"
    lines.append(
        _line(
            description + ")",
            Decimal(billable).scaleb(-6),
            "million requests",
            terms.per_million_requests,
            terms,
        )  # fmt: skip
    )
    sent = Decimal(used.bytes_sent).scaleb(-9)
    billable_gb = max(Decimal(0), sent - terms.included_gb_sent)
    description = f"Data sent ({used.bytes_sent:,} bytes"
    if terms.included_gb_sent:
        description += f", {_number(terms.included_gb_sent)} GB included"
    lines.append(_line(description + ")", billable_gb, "GB", terms.per_gb_sent, terms))
    return lines


def compute(tenant: Tenant, start: datetime, end: datetime) -> Draft:
    terms = terms_for(tenant.plan)
    lines = price(terms, usage(tenant, start, end))
    return Draft(tenant, start, end, terms.currency, lines)


def upcoming(tenant: Tenant, now: datetime | None = None) -> Draft:
    """The running month so far (from its rollups; the last minute may not be in them yet)."""
    start, end = month_bounds(month_of(now or timezone.now()))
    return compute(tenant, start, end)


def refresh_rollups(month: date, now: datetime | None = None) -> None:
    """Brings the rollups up to date before a month is priced: the periodic rollup's work,
    done now (recent hours, and any hour of the month a late sample changed since it last
    ran), not a recomputation of the whole month."""
    del month  # every hour with something new is brought up to date, whatever its month
    rollups.rollup_recent(now=now)


def _check_closable(month: date, now: datetime) -> None:
    if month_bounds(month)[1] > now:
        raise ValidationFailed.one(
            "month", f"{month:%Y-%m} has not ended yet: only past months can be closed"
        )


def close_period(
    tenant: Tenant, month: date, *, refresh: bool = True, now: datetime | None = None
) -> tuple[Invoice, bool]:
    """The month's final invoice for the tenant, written the first time (rollups refreshed
    first unless ``refresh`` is False); (invoice, whether it was written now)."""
    now = now or timezone.now()
    _check_closable(month, now)
    start, end = month_bounds(month)
    found = Invoice.objects.filter(tenant=tenant, period_start=start).first()
    if found is not None:
        return found, False
    if refresh:
        refresh_rollups(month, now)
    draft = compute(tenant, start, end)
    try:
        with transaction.atomic():
            invoice = _write(draft, now)
    except IntegrityError:  # closed concurrently: theirs stands
        return Invoice.objects.get(tenant=tenant, period_start=start), False
    log.info("closed %s for %s: %s %s", f"{month:%Y-%m}", tenant.slug, invoice.total,
             invoice.currency)  # fmt: skip
    return invoice, True


def _write(draft: Draft, now: datetime) -> Invoice:
    tenant = draft.tenant
    prefix = f"GTY-{draft.period_start:%Y-%m}-{tenant.slug}-"
    taken = Invoice.objects.filter(number__startswith=prefix).count()
    invoice = Invoice(
        number=f"{prefix}{taken + 1:04d}",
        tenant=tenant,
        tenant_slug=tenant.slug,
        tenant_name=tenant.display_name,
        plan_name=tenant.plan.name,
        period_start=draft.period_start,
        period_end=draft.period_end,
        currency=draft.currency,
        subtotal=draft.subtotal,
        total=draft.total,
        issued_at=now,
    )
    invoice.save()
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=index,
            description=line.description,
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            amount=line.amount,
            gateway_name=line.gateway_name,
        )  # fmt: skip
        for index, line in enumerate(draft.lines, start=1)
    )
    return invoice


def close_all(month: date, *, tenant: Tenant | None = None, now: datetime | None = None):
    """Closes the month for one tenant or every tenant that existed then; yields
    (tenant, invoice or None, written now, problem or None) for each."""
    now = now or timezone.now()
    _check_closable(month, now)
    refresh_rollups(month, now)
    start, end = month_bounds(month)
    tenants = [tenant] if tenant else Tenant.objects.filter(created_at__lt=end).order_by("slug")
    for each in tenants:
        try:
            invoice, written = close_period(each, month, refresh=False, now=now)
        except Exception as error:  # one tenant's problem (no price book) stops no other
            log.exception("could not close %s for %s", f"{month:%Y-%m}", each.slug)
            yield each, None, False, str(getattr(error, "message", error))
            continue
        yield each, invoice, written, None


def needs_closing(month: date) -> bool:
    """Whether a tenant that existed during the month, on a plan with prices, has no invoice
    for it yet (so the beat task refreshes a whole month of rollups only when there is
    something it can close)."""
    start, end = month_bounds(month)
    closed = Invoice.objects.filter(period_start=start, tenant__isnull=False).values("tenant")
    unclosed = Tenant.objects.filter(created_at__lt=end).exclude(pk__in=closed)
    return unclosed.filter(plan__price_book__isnull=False).exists()
