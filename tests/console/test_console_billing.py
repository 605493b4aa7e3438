"""The billing pages of the console through Django's test client: the operators' revenue page
(``/ops/revenue/``), which shows what ``GET /api/v1/revenue/`` answers."""

import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import Budget, Invoice, InvoiceLine
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.billing.test_revenue import invoice
from tests.conftest import make_org, make_user

pytestmark = pytest.mark.django_db

REVENUE = "/ops/revenue/"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(db):
    return signed_in(make_user("root", is_staff=True))


def test_only_operators_see_the_revenue_page(org, operator):
    assert signed_in(org.users[Role.OWNER]).get(REVENUE).status_code == 404
    assert Client().get(REVENUE).status_code == 302  # to sign-in
    page = operator.get("/ops/tenants/").content.decode()
    assert f'href="{REVENUE}"' in page  # in the operators' navigation


def test_the_revenue_page_shows_totals_per_currency_plan_and_tenant(org, other_org, operator):
    third = make_org("initech", plan="enterprise")
    invoice(org.tenant, "12.50")
    invoice(other_org.tenant, "100.00")
    invoice(third.tenant, "3000", currency="JPY")
    page = operator.get(REVENUE, {"month": "2026-11"}).content.decode()
    assert "Revenue 2026-11" in page
    assert "112.50 USD" in page and "3000 JPY" in page  # never added together
    assert "GTY-2026-11-acme-0001" in page
    top = page.split('id="top-tenants"')[1].split("</ol>")[0]
    assert top.index("initech") < top.index("globex") < top.index("acme")


def test_a_bad_month_is_shown_at_its_field(operator):
    response = operator.get(REVENUE, {"month": "2026-13"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'aria-invalid="true"' in page and "YYYY-MM" in page


# -- a tenant's invoices --------------------------------------------------------------------------


def lines(inv) -> None:
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                invoice=inv,
                position=1,
                description="Requests (1,234)",
                quantity="0",
                unit="million requests",
                unit_price="0.40",
                amount="12.50",
            )
        ]
    )  # fmt: skip  (final lines are written once, as billing.invoices does)


def test_members_read_invoices_and_other_tenants_get_404(org, other_org):
    inv = invoice(org.tenant, "12.50")
    lines(inv)
    viewer = signed_in(org.users[Role.VIEWER])
    page = viewer.get("/t/acme/invoices/").content.decode()
    assert "GTY-2026-11-acme-0001" in page and "12.50 USD" in page
    assert 'href="/t/acme/invoices/upcoming/"' in page
    assert 'href="/t/acme/invoices/"' in page  # in the navigation
    detail = viewer.get(f"/t/acme/invoices/{inv.number}/").content.decode()
    assert "Requests (1,234)" in detail and "million requests" in detail
    assert viewer.get("/t/acme/invoices/upcoming/").status_code == 200
    stranger = signed_in(other_org.users[Role.OWNER])
    assert stranger.get(f"/t/acme/invoices/{inv.number}/").status_code == 404
    assert stranger.get(f"/t/globex/invoices/{inv.number}/").status_code == 404
    assert stranger.get(f"/t/globex/invoices/{inv.number}/pdf/").status_code == 404


def undated(content: bytes) -> bytes:
    return re.sub(rb"/CreationDate \(D:[^)]*\)", b"", content)


@pytest.mark.parametrize("kind", ["csv", "pdf"])
@pytest.mark.parametrize("number", ["GTY-2026-11-acme-0001", "upcoming"])
def test_downloads_are_the_apis_bytes(org, kind, number):
    lines(invoice(org.tenant, "12.50"))
    viewer, client = signed_in(org.users[Role.VIEWER]), org.client(Role.VIEWER)
    for _ in range(5):
        # The running month's draft says when it was drawn, to the second: both answers must
        # come from the same second to be the same bytes.
        second = int(time.time())
        console = viewer.get(f"/t/acme/invoices/{number}/{kind}/")
        api = client.get(f"/api/v1/tenants/acme/invoices/{number}/?format={kind}")
        if int(time.time()) == second:
            break
    assert console.status_code == api.status_code == 200
    # The PDF states when it was drawn (to the second): the rest must be the same bytes.
    assert undated(console.content) == undated(api.content)
    assert console["Content-Disposition"] == api["Content-Disposition"]
    if kind == "pdf":
        assert console.content.startswith(b"%PDF")


# -- the budget ---------------------------------------------------------------------------------

BUDGET = "/t/acme/budget/"


def test_an_admin_sets_and_clears_the_budget(org):
    admin = signed_in(org.users[Role.ADMIN])
    response = admin.post(BUDGET, {"amount": "100.00"})
    assert response.status_code == 302
    page = admin.get(BUDGET).content.decode()
    assert "100.00 USD" in page and "Spent this month" in page
    assert str(Budget.objects.get(tenant=org.tenant).amount) == "100.0000"
    assert AuditEvent.objects.filter(object_type="budget").count() == 1
    assert admin.post(BUDGET, {"amount": ""}).status_code == 302
    assert not Budget.objects.exists()


@pytest.mark.parametrize(
    "amount,words",
    [("-5", "must not be negative"), ("abc", "not a decimal"), ("1.005", "2 decimal places")],
)
def test_a_bad_budget_is_shown_at_its_field_and_changes_nothing(org, amount, words):
    admin = signed_in(org.users[Role.ADMIN])
    admin.post(BUDGET, {"amount": "100.00"})
    response = admin.post(BUDGET, {"amount": amount})
    assert response.status_code == 400
    page = response.content.decode()
    assert words in page and 'aria-invalid="true"' in page
    assert str(Budget.objects.get().amount) == "100.0000"


def test_a_viewer_sees_no_form_and_a_forged_post_is_403(org, other_org):
    viewer = signed_in(org.users[Role.VIEWER])
    page = viewer.get(BUDGET).content.decode()
    assert "Spent this month" in page and 'name="amount"' not in page
    assert viewer.post(BUDGET, {"amount": "5"}).status_code == 403
    assert not Budget.objects.exists()
    assert signed_in(other_org.users[Role.OWNER]).get(BUDGET).status_code == 404


def invoices_until(tenant, count: int) -> None:
    """Final invoices for ``count`` months back from 2026-11 (those missing), each with a line."""
    for back in range(count):
        year, month = divmod(2026 * 12 + 10 - back, 12)
        start = datetime(year, month + 1, 1, tzinfo=UTC)
        number = f"GTY-{start:%Y-%m}-{tenant.slug}-0001"
        if Invoice.objects.filter(number=number).exists():
            continue
        made = Invoice.objects.create(
            number=number, tenant=tenant, tenant_slug=tenant.slug, plan_name="standard",
            period_start=start, period_end=start + timedelta(days=28), currency="USD",
            subtotal=Decimal("1.50"), total=Decimal("1.50"), issued_at=start,
        )  # fmt: skip
        lines(made)


def count_queries(client: Client, url: str) -> int:
    assert client.get(url).status_code == 200, url  # warm: the session, caches
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_billing_pages_cost_the_same_queries_for_1_and_20_invoices(org):
    viewer = signed_in(org.users[Role.VIEWER])
    pages = ["/t/acme/invoices/", "/t/acme/invoices/GTY-2026-11-acme-0001/",
             "/t/acme/invoices/upcoming/", BUDGET]  # fmt: skip
    invoices_until(org.tenant, 1)
    few = {url: count_queries(viewer, url) for url in pages}
    invoices_until(org.tenant, 20)
    assert Invoice.objects.count() == 20
    many = {url: count_queries(viewer, url) for url in pages}
    assert few == many
