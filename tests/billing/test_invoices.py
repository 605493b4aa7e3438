"""Price books, monthly invoices (JSON, CSV, PDF) and closing a period, from a simulated month
of raw metering facts: resizes, a crash, a counter reset, late, missing and repeated samples,
and a gap while the platform was down."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from pypdf import PdfReader

from billing import invoices, prices, rollups
from billing.models import FinalInvoice, Invoice, InvoiceLine, PriceBook, ReplicaHour, UsageHour
from billing.money import round_amount
from gateways import services
from provisioning import metering
from provisioning.metering import PortCounters
from provisioning.models import ReplicaIncarnation
from tenants.models import AuditEvent, Plan
from tenants.roles import Role
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db

NOV = datetime(2026, 11, 1, tzinfo=UTC)
MONTH = NOV.date()
AFTER = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # when the month is closed
PRICES = {
    "currency": "USD",
    "replicaHour": {"small": "0.025", "medium": "0.05", "large": "0.10", "xlarge": "0.20"},
    "perMillionRequests": "0.40",
    "perGbSent": "0.07",
    "included": {"requests": 1_000_000, "gbSent": "2", "replicaHours": "10"},
}
STOP = ReplicaIncarnation.Stop


def day(d: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return NOV + timedelta(days=d - 1, hours=hour, minutes=minute, seconds=second)


def counters(ok=0, client=0, server=0, sent=0) -> dict[int, PortCounters]:
    values = dict.fromkeys(metering.COUNTERS, 0)
    values.update(responses_2xx=ok, responses_4xx=client, responses_5xx=server, bytes_sent=sent)
    return {80: PortCounters(values, {})}


def run(gateway, start: datetime, size: str, node: str) -> uuid.UUID:
    incarnation = uuid.uuid4()
    metering.open_incarnation(incarnation, gateway.pk, node, size, 4242, "/runtime")
    ReplicaIncarnation.objects.filter(id=incarnation).update(started_at=start, last_seen_at=start)
    return incarnation


def sample(incarnation, seq: int, at: datetime, **values) -> None:
    metering.record_sample(incarnation, seq, at, counters(**values))


@pytest.fixture(autouse=True)
def _prices_and_retention(db, settings):
    prices.ensure_default_price_books()  # a flushing test before this one removes them
    settings.GANTRY_USAGE_SAMPLE_RETENTION_DAYS = 45


def existed_since(tenant, moment: datetime) -> None:
    type(tenant).objects.filter(pk=tenant.pk).update(created_at=moment)


@pytest.fixture
def priced(org):
    prices.set_price_book(ACTOR, org.tenant.plan, PRICES)
    existed_since(org.tenant, datetime(2026, 9, 1, tzinfo=UTC))
    return org


def simulate_november(tenant) -> uuid.UUID:
    """The month; returns the run whose late sample has not arrived yet."""
    edge = services.create_gateway(ACTOR, tenant, "edge", {})
    api = services.create_gateway(ACTOR, tenant, "api", {})
    # edge, small, from the first instant until a resize at 10 Nov 12:00.
    a = run(edge, day(1), "small", "acme/edge/0")
    sample(a, 0, day(1, 1), ok=400_000, sent=1_000_000_000)
    sample(a, 1, day(5), ok=1_000_000, sent=2_500_000_000)
    sample(a, 1, day(5), ok=1_000_000, sent=2_500_000_000)  # repeated: stored once
    # seq 2 never arrives: its requests come with seq 3
    sample(a, 3, day(10, 11, 59), ok=1_500_000, sent=3_000_000_000)
    metering.close_incarnation(a, STOP.SCALED_DOWN, day(10, 12))
    # edge, resized to medium; crashes (found gone, closed at its last sighting, 20 Nov 00:00).
    b = run(edge, day(10, 12), "medium", "acme/edge/0")
    sample(b, 0, day(11), ok=200_000, server=50_000, sent=400_000_000)
    sample(b, 1, day(20), ok=700_000, client=10_000, server=50_000, sent=1_200_000_000)
    assert metering.close_lost("/runtime", keep=set()) == 1
    # edge, restarted five minutes later; its counter drops (a reset: counted from zero);
    # then the whole platform is down from 22 Nov 00:00 to 25 Nov 00:00.
    c = run(edge, day(20, 0, 5), "medium", "acme/edge/0")
    sample(c, 0, day(21), ok=100_000, sent=100_000_000)
    sample(c, 1, day(22), ok=50_000, sent=50_000_000)
    assert metering.close_lost("/runtime", keep=set()) == 1  # back up: closed at 22 Nov 00:00
    # edge, started again when the platform is back, runs into December.
    d = run(edge, day(25), "medium", "acme/edge/0")
    sample(d, 0, day(25, 6), ok=300_000, sent=500_000_000)
    # api, large, ten and a half hours on 15 Nov.
    e = run(api, day(15), "large", "acme/api/0")
    sample(e, 0, day(15, 10), ok=1_234_567, sent=987_654_321)
    metering.close_incarnation(e, STOP.SCALED_DOWN, day(15, 10, 30))
    return d


def finish_november(d: uuid.UUID) -> None:
    """The late sample (taken 30 Nov 23:59:59, arrives after the rollup) and December's."""
    sample(d, 1, day(30, 23, 59, 59), ok=600_000, sent=1_000_000_000)
    sample(d, 2, datetime(2026, 12, 1, 1, tzinfo=UTC), ok=700_000, sent=1_100_000_000)
    metering.close_incarnation(d, STOP.SCALED_DOWN, datetime(2026, 12, 1, 2, tzinfo=UTC))


# The hand-computed invoice, under PRICES:
#   replica time  small : 1 Nov 00:00 → 10 Nov 12:00                       = 228 h
#                 medium: 10 Nov 12:00 → 20 Nov 00:00 (crash, last seen)   = 228 h
#                       + 20 Nov 00:05 → 22 Nov 00:00 (platform down)      = 47 h 55 min
#                       + 25 Nov 00:00 → 1 Dec 00:00 (December not here)  = 144 h
#                       = 419.91666… h → 419.916667 (6 places, half-up)
#                 large : 15 Nov 00:00 → 10:30                            = 10.5 h
#   10 included replica-hours come off small first: 218 h billable.
#   small  218        × 0.025 = 5.45
#   medium 419.916667 × 0.05  = 20.99583335 → 21.00
#   large  10.5       × 0.10  = 1.05
#   requests: a 1,500,000 (seq 3 carries the missing seq 2; the repeat counts once)
#           + b 760,000 (700,000 + 10,000 + 50,000) + c 150,000 (100,000, then a reset: 50,000)
#           + d 600,000 (the late sample; December's 100,000 more is not here)
#           + e 1,234,567                                       = 4,244,567
#     − 1,000,000 included = 3.244567 million × 0.40 = 1.2978268 → 1.30
#   bytes sent: 3,000,000,000 + 1,200,000,000 + 150,000,000 + 1,000,000,000 + 987,654,321
#             = 6,337,654,321 = 6.337654321 GB − 2 included = 4.337654321 × 0.07
#             = 0.30363580247 → 0.30
#   subtotal = 5.45 + 21.00 + 1.05 + 1.30 + 0.30 = 29.10 = total (no tax)
EXPECTED_LINES = [
    ("Replica-hours, small (228 h, 10 h included)", "218", "replica-hour", "0.025", "5.45"),
    ("Replica-hours, medium (419.916667 h)", "419.916667", "replica-hour", "0.05", "21.00"),
    ("Replica-hours, large (10.5 h)", "10.5", "replica-hour", "0.1", "1.05"),
    ("Requests (4,244,567, 1,000,000 included)", "3.244567", "million requests", "0.4", "1.30"),
    ("Data sent (6,337,654,321 bytes, 2 GB included)", "4.337654321", "GB", "0.07", "0.30"),
]


@pytest.fixture
def november(priced):
    d = simulate_november(priced.tenant)
    rollups.rollup(NOV, AFTER)  # the periodic rollups ran before the late sample came
    finish_november(d)
    return priced


def closed(org) -> Invoice:
    invoice, written = invoices.close_period(org.tenant, MONTH, now=AFTER)
    assert written
    return invoice


def test_closing_the_month_bills_exactly_the_hand_computed_amounts(november):
    invoice = closed(november)
    assert invoice.number == "GTY-2026-11-acme-0001"
    assert (invoice.period_start, invoice.period_end) == (NOV, datetime(2026, 12, 1, tzinfo=UTC))
    assert (invoice.currency, invoice.status, invoice.tenant_slug) == ("USD", "final", "acme")
    assert (invoice.subtotal, invoice.total) == (Decimal("29.10"), Decimal("29.10"))
    body = november.client(Role.VIEWER).get(f"/api/v1/tenants/acme/invoices/{invoice.number}/")
    assert body.status_code == 200, body.content
    data = body.json()
    lines = [tuple(line.values()) for line in data["lines"]]
    assert lines == EXPECTED_LINES
    assert (data["subtotal"], data["total"], data["currency"]) == ("29.10", "29.10", "USD")
    assert (data["periodStart"], data["periodEnd"]) == (
        "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
    )  # fmt: skip
    assert data["issuedAt"] == "2026-12-01T03:00:00Z" and data["number"] == invoice.number


def test_running_the_pipeline_again_changes_nothing(november):
    invoice = closed(november)
    rows = sorted(ReplicaHour.objects.values_list("hour", "size", "milliseconds"))
    traffic = sorted(UsageHour.objects.values_list("hour", "responses_2xx", "bytes_sent"))
    invoices.refresh_rollups(MONTH, AFTER)  # the month's rollups again, from the raw samples
    again, written = invoices.close_period(november.tenant, MONTH, now=AFTER + timedelta(days=1))
    assert (again.pk, written) == (invoice.pk, False)
    assert sorted(ReplicaHour.objects.values_list("hour", "size", "milliseconds")) == rows
    assert sorted(UsageHour.objects.values_list("hour", "responses_2xx", "bytes_sent")) == traffic
    assert Invoice.objects.count() == 1 and InvoiceLine.objects.count() == 5
    call_command("close_billing_period", "--month", "2026-11", "--tenant", "acme",
                 stdout=(out := io.StringIO()))  # fmt: skip
    assert "already closed: GTY-2026-11-acme-0001 (USD 29.10)" in out.getvalue()
    assert Invoice.objects.get().total == Decimal("29.10")


def test_a_final_invoice_cannot_be_changed_or_deleted(november):
    invoice = closed(november)
    invoice.total = Decimal("0")
    with pytest.raises(FinalInvoice, match="final"):
        invoice.save()
    with pytest.raises(FinalInvoice, match="final"):
        Invoice.objects.get().delete()
    with pytest.raises(FinalInvoice, match="final"), transaction.atomic():
        Invoice.objects.all().delete()
    line = InvoiceLine.objects.first()
    line.amount = Decimal("0")
    with pytest.raises(FinalInvoice, match="final"):
        line.save()
    with pytest.raises(FinalInvoice, match="final"), transaction.atomic():
        InvoiceLine.objects.all().delete()
    stored = Invoice.objects.get()
    assert stored.total == Decimal("29.10") and stored.lines.count() == 5


def test_the_invoice_outlives_its_tenant(november):
    from tenants import services as tenant_services

    invoice = closed(november)
    services.delete_gateway(ACTOR, november.tenant.gateways.get(name="edge"))
    services.delete_gateway(ACTOR, november.tenant.gateways.get(name="api"))
    tenant_services.delete_tenant(ACTOR, november.tenant)
    kept = Invoice.objects.get(pk=invoice.pk)
    assert (kept.tenant, kept.tenant_slug, kept.total) == (None, "acme", Decimal("29.10"))


def test_csv_totals_equal_the_json_ones(november):
    invoice = closed(november)
    client = november.client(Role.VIEWER)
    url = f"/api/v1/tenants/acme/invoices/{invoice.number}/"
    answer = client.get(url, {"format": "csv"})
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    assert f'filename="{invoice.number}.csv"' in answer["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    data = client.get(url).json()
    assert [row["amount"] for row in rows[:-2]] == [line["amount"] for line in data["lines"]]
    assert (rows[-2]["description"], rows[-2]["amount"]) == ("Subtotal", data["subtotal"])
    assert (rows[-1]["description"], rows[-1]["amount"]) == ("Total", data["total"])
    assert sum(Decimal(row["amount"]) for row in rows[:-2]) == Decimal(data["total"])


def test_the_pdf_shows_the_number_tenant_every_amount_and_the_total(november):
    invoice = closed(november)
    answer = november.client(Role.VIEWER).get(
        f"/api/v1/tenants/acme/invoices/{invoice.number}/", {"format": "pdf"}
    )
    assert answer.status_code == 200 and answer["Content-Type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    assert invoice.number in text and "acme" in text
    for *_, amount in EXPECTED_LINES:
        assert amount in text, amount
    assert "USD 29.10" in text


def test_the_list_is_newest_first_and_paginated(november):
    latest = closed(november)  # November's, and an empty October's
    earlier, _ = invoices.close_period(november.tenant, NOV.replace(month=10).date(), now=AFTER)
    answer = november.client(Role.VIEWER).get("/api/v1/tenants/acme/invoices/")
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["number"] for r in results] == [latest.number, "GTY-2026-10-acme-0001"]
    assert results[1]["total"] == "0.00" and earlier.total == 0
    assert answer.json()["count"] == 2


def test_upcoming_prices_the_running_month_without_storing_it(priced):
    tenant = priced.tenant
    edge = services.create_gateway(ACTOR, tenant, "edge", {})
    start, _ = invoices.month_bounds(invoices.month_of(datetime.now(UTC)))
    first = run(edge, start, "large", "acme/edge/0")
    sample(first, 0, start + timedelta(seconds=1), ok=2_000_000, sent=3_000_000_000)
    metering.close_incarnation(first, STOP.SCALED_DOWN, start + timedelta(seconds=2))
    rollups.rollup(start, start + timedelta(hours=1))
    answer = priced.client(Role.VIEWER).get("/api/v1/tenants/acme/invoices/upcoming/")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert (data["status"], data["number"], data["issuedAt"]) == ("draft", None, None)
    assert data["periodStart"] == start.isoformat().replace("+00:00", "Z")
    # 2 s of large is within the 10 included hours; (2M − 1M) requests: 1 × 0.40;
    # 3 GB − 2 included = 1 × 0.07
    assert [line["amount"] for line in data["lines"]] == ["0.00", "0.40", "0.07"]
    assert data["total"] == "0.47"
    assert Invoice.objects.count() == 0
    pdf = priced.client(Role.VIEWER).get("/api/v1/tenants/acme/invoices/upcoming/?format=pdf")
    assert "draft" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    sheet = priced.client(Role.VIEWER).get("/api/v1/tenants/acme/invoices/upcoming/?format=csv")
    rows = list(csv.DictReader(io.StringIO(sheet.content.decode())))
    assert (rows[-1]["description"], rows[-1]["amount"]) == ("Total", "0.47")


def test_members_read_invoices_other_tenants_get_404_anonymous_401(november, other_org):
    invoice = closed(november)
    url = f"/api/v1/tenants/acme/invoices/{invoice.number}/"
    for role in (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER):
        assert november.client(role).get(url).status_code == 200
    outsider = other_org.client(Role.OWNER)
    assert outsider.get(url).status_code == 404
    assert outsider.get("/api/v1/tenants/acme/invoices/").status_code == 404
    assert outsider.get("/api/v1/tenants/acme/invoices/upcoming/").status_code == 404
    # globex's own list does not show acme's invoice, nor does its URL reach it.
    assert outsider.get("/api/v1/tenants/globex/invoices/").json()["results"] == []
    assert outsider.get(f"/api/v1/tenants/globex/invoices/{invoice.number}/").status_code == 404
    from rest_framework.test import APIClient

    assert APIClient().get(url).status_code == 401
    # Errors stay JSON even when a PDF was asked for.
    missing = november.client(Role.VIEWER).get(
        "/api/v1/tenants/acme/invoices/GTY-2099-01-acme-0001/", {"format": "pdf"}
    )
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"


def test_invoices_cannot_be_written_through_the_api(november):
    invoice = closed(november)
    url = f"/api/v1/tenants/acme/invoices/{invoice.number}/"
    for method in ("put", "patch", "delete"):
        assert getattr(november.client(Role.OWNER), method)(url, {}).status_code == 405
    assert Invoice.objects.get().total == Decimal("29.10")


# -- closing ------------------------------------------------------------------------------------


def test_the_command_closes_the_month_and_says_so(november):
    out = io.StringIO()
    call_command("close_billing_period", "--month", "2026-11", stdout=out)
    assert "acme: wrote GTY-2026-11-acme-0001 (USD 29.10)" in out.getvalue()
    assert "2026-11: 1 invoices written, 0 already closed, 0 failed" in out.getvalue()
    assert Invoice.objects.get().total == Decimal("29.10")


@pytest.mark.parametrize(
    ("month", "words"),
    [("2026-13", "--month: '2026-13' is not a month"), ("November", "--month: 'November'"),
     ("2999-01", "--month: 2999-01 has not ended yet")],
)  # fmt: skip
def test_the_command_refuses_a_bad_month_naming_it(org, month, words):
    with pytest.raises(CommandError, match=words):
        call_command("close_billing_period", "--month", month, stdout=io.StringIO())
    assert Invoice.objects.count() == 0


def test_the_beat_task_waits_for_the_delay_then_closes_every_tenant(priced, other_org, settings):
    from billing import tasks

    settings.GANTRY_BILLING_CLOSE_DELAY_MINUTES = 120
    this_month = invoices.month_bounds(invoices.month_of(datetime.now(UTC)))[0]
    previous = invoices.previous_month(datetime.now(UTC))
    since = datetime.now(UTC) - this_month
    expected = 2 if since >= timedelta(minutes=120) else 0
    for tenant in (priced.tenant, other_org.tenant):  # both existed last month
        existed_since(tenant, this_month - timedelta(days=40))
    assert tasks.close_periods() == expected
    settings.GANTRY_BILLING_CLOSE_DELAY_MINUTES = 0
    tasks.close_periods()
    assert sorted(Invoice.objects.values_list("tenant_slug", "period_start")) == [
        ("acme", invoices.month_bounds(previous)[0]),
        ("globex", invoices.month_bounds(previous)[0]),
    ]
    assert tasks.close_periods() == 0  # closed: nothing more


def test_a_plan_without_prices_is_not_closed_and_says_why(org):
    PriceBook.objects.filter(plan=org.tenant.plan).delete()
    existed_since(org.tenant, datetime(2026, 9, 1, tzinfo=UTC))
    with pytest.raises(CommandError):
        call_command("close_billing_period", "--month", "2026-11", stderr=(err := io.StringIO()),
                     stdout=io.StringIO())  # fmt: skip
    assert "no price book" in err.getvalue()
    assert Invoice.objects.count() == 0


# -- price books --------------------------------------------------------------------------------


def test_the_rounding_rule_is_half_up_to_the_minor_unit():
    assert round_amount(Decimal("0.125"), "USD") == Decimal("0.13")
    assert round_amount(Decimal("0.124999"), "USD") == Decimal("0.12")
    assert round_amount(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert round_amount(Decimal("0.0005"), "KWD") == Decimal("0.001")


def test_default_plans_have_prices_out_of_the_box(staff_client):
    for plan in ("developer", "standard", "enterprise"):
        answer = staff_client.get(f"/api/v1/plans/{plan}/prices/")
        assert answer.status_code == 200, answer.content
        assert answer.json()["currency"] == "USD"
        assert set(answer.json()["replicaHour"]) == {"small", "medium", "large", "xlarge"}


def test_an_operator_sets_prices_audited_and_everyone_reads_them(staff_client, org):
    body = dict(PRICES, currency="JPY", perMillionRequests="50", perGbSent="12")
    answer = staff_client.put("/api/v1/plans/standard/prices/", body, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["currency"], answer.json()["perGbSent"]) == ("JPY", "12")
    event = AuditEvent.objects.filter(object_type="price-book", object_name="standard").first()
    assert event.actor_name == "operator" and event.after["currency"] == "JPY"
    assert event.before["currency"] == "USD"
    read = org.client(Role.VIEWER).get("/api/v1/plans/standard/prices/")
    assert read.status_code == 200 and read.json()["perMillionRequests"] == "50"
    refused = org.client(Role.OWNER).put("/api/v1/plans/standard/prices/", body, format="json")
    assert refused.status_code == 403
    assert PriceBook.objects.get(plan__name="standard").currency == "JPY"


def test_yen_amounts_have_no_decimals(org):
    prices.set_price_book(ACTOR, org.tenant.plan, dict(PRICES, currency="JPY",
                          perMillionRequests="55", perGbSent="10"))  # fmt: skip
    terms = prices.terms_for(org.tenant.plan)
    lines = invoices.price(terms, invoices.Usage({}, 1_010_000, 2_000_000_000))
    assert [line.amount for line in lines] == [Decimal("1"), Decimal("0")]  # 0.01 M × 55 = 0.55


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"currency": "usd"}, "currency", "ISO 4217"),
        ({"currency": "XYZ"}, "currency", "not an ISO 4217"),
        ({"perGbSent": "-0.01"}, "perGbSent", "negative"),
        ({"perMillionRequests": "abc"}, "perMillionRequests", "not a decimal"),
        ({"perMillionRequests": "0.0000001"}, "perMillionRequests", "6 decimal places"),
        ({"replicaHour": {"small": "1", "medium": "1", "large": "1"}}, "replicaHour.xlarge",
         "required"),
        ({"replicaHour": dict(PRICES["replicaHour"], huge="1")}, "replicaHour.huge", "not a size"),
        ({"included": {"requests": -1}}, "included.requests", "≥ 0"),
        ({"colour": "red"}, "colour", "unknown"),
    ],
)  # fmt: skip
def test_a_bad_price_book_is_a_400_naming_the_field_and_changes_nothing(
    staff_client, change, path, words
):
    before = PriceBook.objects.get(plan__name="standard")
    answer = staff_client.put("/api/v1/plans/standard/prices/", dict(PRICES, **change),
                              format="json")  # fmt: skip
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert words in fields[path], fields
    after = PriceBook.objects.get(plan__name="standard")
    assert (after.currency, after.per_gb_sent, after.replica_hour) == (
        before.currency, before.per_gb_sent, before.replica_hour
    )  # fmt: skip
    assert not AuditEvent.objects.filter(object_type="price-book").exists()


def test_an_unknown_plans_prices_are_a_404(staff_client):
    assert staff_client.get("/api/v1/plans/nope/prices/").status_code == 404
    assert staff_client.put("/api/v1/plans/nope/prices/", PRICES, format="json").status_code == 404
    assert not Plan.objects.filter(name="nope").exists()


def test_prices_changed_in_the_admin_are_validated_and_audited(client):
    from tests.conftest import make_user

    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    book = PriceBook.objects.get(plan__name="developer")
    form = {
        "currency": "EUR",
        "replica_hour": '{"small": "0.01", "medium": "0.02", "large": "0.04", "xlarge": "0.08"}',
        "per_million_requests": "0.45",
        "per_gb_sent": "0.08",
        "included_requests": "1000000",
        "included_gb_sent": "10",
        "included_replica_hours": "744",
    }
    url = f"/admin/billing/pricebook/{book.pk}/change/"
    refused = client.post(url, dict(form, replica_hour='{"small": "0.01"}'))
    assert refused.status_code == 200 and "replicaHour.xlarge" in refused.content.decode()
    assert PriceBook.objects.get(pk=book.pk).currency == "USD"
    assert client.post(url, form).status_code == 302
    book.refresh_from_db()
    assert (book.currency, book.per_million_requests) == ("EUR", Decimal("0.45"))
    event = AuditEvent.objects.get(object_type="price-book", object_name="developer")
    assert (event.actor_name, event.before["currency"], event.after["currency"]) == (
        "root", "USD", "EUR"
    )  # fmt: skip
