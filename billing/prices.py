"""Price books: validating them, writing them (audited), and reading them as ``Terms``.

One validation for every writer (the API, the admin, the data migration's values): a price
book's JSON shape is

    {"currency": "USD",
     "replicaHour": {"small": "0.025", "medium": "0.05", "large": "0.10", "xlarge": "0.20"},
     "perMillionRequests": "0.40", "perGbSent": "0.07",
     "included": {"requests": 10000000, "gbSent": "100", "replicaHours": "0"}}

Every gateway size needs a price. Prices are decimal strings (at most 6 decimal places),
never negative; allowances are per calendar month.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction

from billing.models import PriceBook
from billing.money import currency_problem, plain
from config.errors import Conflict, FieldError, ValidationFailed
from gateways.sizes import SIZES
from tenants import audit
from tenants.audit import Actor
from tenants.models import Plan

MAX_PRICE = Decimal("100000000")  # per unit; anything more is a typo
FIELDS = ("currency", "replicaHour", "perMillionRequests", "perGbSent", "included")
INCLUDED = ("requests", "gbSent", "replicaHours")


@dataclass(frozen=True)
class Terms:
    """A price book as the invoice arithmetic reads it."""

    currency: str
    replica_hour: dict[str, Decimal]
    per_million_requests: Decimal
    per_gb_sent: Decimal
    included_requests: int
    included_gb_sent: Decimal
    included_replica_hours: Decimal


def _decimal(value, path: str, errors: list, places: int, maximum: Decimal) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        errors.append(FieldError(path, 'must be a decimal string, e.g. "0.025"'))
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        errors.append(FieldError(path, f"{value!r} is not a decimal number"))
        return None
    if number < 0:
        errors.append(FieldError(path, "must not be negative"))
    elif number > maximum:
        errors.append(FieldError(path, f"must be at most {maximum}"))
    elif -number.as_tuple().exponent > places:
        errors.append(FieldError(path, f"at most {places} decimal places"))
    else:
        return number
    return None


def parse(data) -> dict:
    """The model fields of a price book from its JSON shape; ValidationFailed naming every bad
    field (JSON paths) otherwise."""
    if not isinstance(data, dict):
        raise ValidationFailed.one("", "must be an object")
    errors: list[FieldError] = []
    for key in data:
        if key not in FIELDS:
            errors.append(FieldError(str(key), "unknown field"))
    for key in FIELDS:
        if key not in data:
            errors.append(FieldError(key, "this field is required", "required"))
    fields: dict = {}
    if "currency" in data:
        problem = currency_problem(data["currency"])
        if problem:
            errors.append(FieldError("currency", problem))
        fields["currency"] = data["currency"]
    if "replicaHour" in data:
        given = data["replicaHour"]
        if not isinstance(given, dict):
            errors.append(FieldError("replicaHour", "must be an object: size → price"))
        else:
            prices = {}
            for size in given:
                if size not in SIZES:
                    known = ", ".join(SIZES)
                    errors.append(FieldError(f"replicaHour.{size}", f"not a size ({known})"))
            for size in SIZES:
                if size not in given:
                    errors.append(FieldError(f"replicaHour.{size}", "a price is required"))
                    continue
                price = _decimal(given[size], f"replicaHour.{size}", errors, 6, MAX_PRICE)
                if price is not None:
                    prices[size] = plain(price)
            fields["replica_hour"] = prices
    per_unit = (("perMillionRequests", "per_million_requests"), ("perGbSent", "per_gb_sent"))
    for key, field in per_unit:
        if key in data:
            fields[field] = _decimal(data[key], key, errors, 6, MAX_PRICE)
    if "included" in data:
        given = data["included"]
        if not isinstance(given, dict):
            errors.append(FieldError("included", "must be an object"))
        else:
            for key in given:
                if key not in INCLUDED:
                    errors.append(FieldError(f"included.{key}", "unknown field"))
            requests = given.get("requests", 0)
            if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
                errors.append(FieldError("included.requests", "must be a whole number ≥ 0"))
            elif requests > 10**15:
                errors.append(FieldError("included.requests", "must be at most 10^15"))
            fields["included_requests"] = requests
            limit = Decimal(10**12)
            fields["included_gb_sent"] = _decimal(
                given.get("gbSent", "0"), "included.gbSent", errors, 3, limit
            )
            fields["included_replica_hours"] = _decimal(
                given.get("replicaHours", "0"), "included.replicaHours", errors, 3, limit
            )
    if errors:
        raise ValidationFailed(errors)
    return fields


def as_json(book: PriceBook) -> dict:
    return {
        "plan": book.plan.name,
        "currency": book.currency,
        "replicaHour": {size: book.replica_hour.get(size, "0") for size in SIZES},
        "perMillionRequests": plain(book.per_million_requests),
        "perGbSent": plain(book.per_gb_sent),
        "included": {
            "requests": book.included_requests,
            "gbSent": plain(book.included_gb_sent),
            "replicaHours": plain(book.included_replica_hours),
        },
        "updatedAt": book.updated_at.isoformat().replace("+00:00", "Z"),
    }


def _snapshot(book: PriceBook | None) -> dict | None:
    if book is None:
        return None
    body = as_json(book)
    body.pop("updatedAt")
    return body


@transaction.atomic
def set_price_book(actor: Actor, plan: Plan, data) -> PriceBook:
    """Creates or replaces the plan's price book (validated as ``parse``), audited. New prices
    apply to invoices closed from now on; final invoices keep theirs."""
    fields = parse(data)
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    book = PriceBook.objects.filter(plan=plan).first()
    before = _snapshot(book)
    if book is None:
        book = PriceBook(plan=plan)
    for name, value in fields.items():
        setattr(book, name, value)
    book.save()
    book.refresh_from_db()
    action = "create" if before is None else "update"
    audit.record(actor, action, "price-book", plan.name, tenant=None, before=before,
                 after=_snapshot(book))  # fmt: skip
    return book


def terms_for(plan: Plan) -> Terms:
    """The plan's prices; Conflict when an operator has not set any."""
    book = PriceBook.objects.filter(plan=plan).first()
    if book is None:
        raise Conflict(
            f"plan {plan.name!r} has no price book: an operator sets one with "
            f"PUT /api/v1/plans/{plan.name}/prices/"
        )
    return Terms(
        currency=book.currency,
        replica_hour={size: Decimal(price) for size, price in book.replica_hour.items()},
        per_million_requests=book.per_million_requests,
        per_gb_sent=book.per_gb_sent,
        included_requests=book.included_requests,
        included_gb_sent=book.included_gb_sent,
        included_replica_hours=book.included_replica_hours,
    )


def ensure_default_price_books() -> None:
    """The default plans' price books, where missing (what the data migration creates)."""
    from billing.default_prices import DEFAULT_PRICES

    for plan in Plan.objects.filter(name__in=DEFAULT_PRICES):
        if not PriceBook.objects.filter(plan=plan).exists():
            PriceBook.objects.create(plan=plan, **parse(DEFAULT_PRICES[plan.name]))
