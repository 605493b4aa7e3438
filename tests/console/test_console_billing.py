"""The billing pages of the console through Django's test client: the operators' revenue page
(``/ops/revenue/``), which shows what ``GET /api/v1/revenue/`` answers."""

import pytest
from django.test import Client

from billing.models import InvoiceLine
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


@pytest.mark.parametrize("kind", ["csv", "pdf"])
@pytest.mark.parametrize("number", ["GTY-2026-11-acme-0001", "upcoming"])
def test_downloads_are_the_apis_bytes(org, kind, number):
    lines(invoice(org.tenant, "12.50"))
    console = signed_in(org.users[Role.VIEWER]).get(f"/t/acme/invoices/{number}/{kind}/")
    api = org.client(Role.VIEWER).get(f"/api/v1/tenants/acme/invoices/{number}/?format={kind}")
    assert console.status_code == api.status_code == 200
    assert console.content == api.content
    assert console["Content-Disposition"] == api["Content-Disposition"]
    if kind == "pdf":
        assert console.content.startswith(b"%PDF")
