"""The billing pages of the console through Django's test client: the operators' revenue page
(``/ops/revenue/``), which shows what ``GET /api/v1/revenue/`` answers."""

import pytest
from django.test import Client

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
