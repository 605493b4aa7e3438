"""Monthly budgets and their alerts.

A tenant admin sets a monthly budget in its price book's currency (``set_budget``; 0 or
none removes it). After each rollup ``check_budgets`` prices the running month so far; when
its total reaches 80 % and then 100 % of the budget, one ``BudgetAlert`` per threshold and
month is recorded, and written to the audit log by ``system:billing``.
"""

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import invoices
from billing.models import Budget, BudgetAlert
from billing.money import minor_unit, text
from billing.prices import terms_for
from config.errors import Conflict, FieldError, ValidationFailed
from tenants import audit
from tenants.audit import Actor
from tenants.models import Tenant

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)
MAX_BUDGET = Decimal("1000000000000")


def parse_amount(value, currency: str) -> Decimal | None:
    """A budget from the API's ``amount``: a decimal string ≥ 0 with at most the currency's
    places; None, "" or 0 mean no budget."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationFailed.one("amount", 'must be a decimal string, e.g. "100.00"')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise ValidationFailed.one("amount", f"{value!r} is not a decimal number")
    places = minor_unit(currency)
    problems = [
        (amount < 0, "must not be negative"),
        (amount > MAX_BUDGET, f"must be at most {MAX_BUDGET}"),
        (-amount.as_tuple().exponent > places, f"at most {places} decimal places in {currency}"),
    ]
    for bad, message in problems:
        if bad:
            raise ValidationFailed([FieldError("amount", message)])
    return amount or None


@transaction.atomic
def set_budget(actor: Actor, tenant: Tenant, data) -> Budget | None:
    """Sets (or with 0 / null, removes) the tenant's monthly budget; audited."""
    if not isinstance(data, dict):
        raise ValidationFailed.one("", "must be an object")
    unknown = [key for key in data if key != "amount"]
    if unknown:
        raise ValidationFailed([FieldError(str(key), "unknown field") for key in unknown])
    currency = terms_for(tenant.plan).currency
    amount = parse_amount(data.get("amount"), currency)
    found = Budget.objects.select_for_update().filter(tenant=tenant).first()
    before = {"amount": text(found.amount, currency), "currency": currency} if found else None
    if amount is None:
        if found:
            found.delete()
            audit.record(actor, "delete", "budget", tenant.slug, tenant=tenant, before=before)
        return None
    budget = found or Budget(tenant=tenant)
    budget.amount = amount
    budget.save()
    after = {"amount": text(amount, currency), "currency": currency}
    audit.record(actor, "update" if found else "create", "budget", tenant.slug, tenant=tenant,
                 before=before, after=after)  # fmt: skip
    return budget


def status(tenant: Tenant, now: datetime | None = None) -> dict:
    """The API's ``GET …/budget/``: the budget, what the running month has cost so far, and
    this month's alerts."""
    now = now or timezone.now()
    draft = invoices.upcoming(tenant, now)
    budget = Budget.objects.filter(tenant=tenant).first()
    month = invoices.month_of(now)
    alerts = BudgetAlert.objects.filter(tenant=tenant, month=month).order_by("threshold")
    return {
        "amount": text(budget.amount, draft.currency) if budget else None,
        "currency": draft.currency,
        "month": f"{month:%Y-%m}",
        "spent": text(draft.total, draft.currency),
        "percent": percent(draft.total, budget.amount) if budget else None,
        "alerts": [
            {
                "threshold": alert.threshold,
                "budget": text(alert.budget, alert.currency),
                "total": text(alert.total, alert.currency),
                "createdAt": alert.created_at.isoformat().replace("+00:00", "Z"),
            }
            for alert in alerts
        ],
    }


def percent(spent: Decimal, budget: Decimal) -> int:
    """Whole percent of the budget used, rounded down (99.9 % is 99 %, not yet 100)."""
    return int(spent * 100 // budget) if budget else 0


def check(tenant: Tenant, now: datetime | None = None) -> list[BudgetAlert]:
    """Records the thresholds the running month has reached and not yet recorded."""
    budget = Budget.objects.filter(tenant=tenant).first()
    if budget is None:
        return []
    now = now or timezone.now()
    month = invoices.month_of(now)
    draft = invoices.upcoming(tenant, now)
    used = percent(draft.total, budget.amount)
    recorded = set(
        BudgetAlert.objects.filter(tenant=tenant, month=month).values_list("threshold", flat=True)
    )
    created = []
    for threshold in THRESHOLDS:
        if used < threshold or threshold in recorded:
            continue
        try:
            with transaction.atomic():
                alert = BudgetAlert.objects.create(
                    tenant=tenant, month=month, threshold=threshold, budget=budget.amount,
                    total=draft.total, currency=draft.currency,
                )  # fmt: skip
                after = {
                    "month": f"{month:%Y-%m}",
                    "threshold": threshold,
                    "percent": used,
                    "budget": text(budget.amount, draft.currency),
                    "total": text(draft.total, draft.currency),
                    "currency": draft.currency,
                }
                audit.record(Actor.system("billing"), "alert", "budget", tenant.slug,
                             tenant=tenant, after=after)  # fmt: skip
        except IntegrityError:
            continue  # another check recorded it first
        created.append(alert)
    return created


def check_budgets(now: datetime | None = None) -> int:
    """``check`` for every tenant with a budget; the number of alerts recorded."""
    count = 0
    for budget in Budget.objects.select_related("tenant__plan"):
        try:
            count += len(check(budget.tenant, now))
        except Exception:  # noqa: BLE001 - one tenant's missing price book stops no other
            log.exception("budget check of %s", budget.tenant.slug)
    return count


def banner(tenant: Tenant, now: datetime | None = None) -> str | None:
    """The console's banner text when this month's 80 % or 100 % alert exists, else None."""
    now = now or timezone.now()
    month = invoices.month_of(now)
    alert = BudgetAlert.objects.filter(tenant=tenant, month=month).order_by("-threshold").first()
    if alert is None:
        return None
    budget = Budget.objects.filter(tenant=tenant).first()
    if budget is None:
        return None  # removed since
    try:
        spent = invoices.upcoming(tenant, now).total
    except Conflict:  # the plan lost its price book: the alert's own figure
        spent = alert.total
    shown = f"{alert.currency} {text(budget.amount, alert.currency)}"
    return f"You have used {percent(spent, budget.amount)} % of your monthly budget ({shown})."
