"""The operators' revenue report: ``GET /api/v1/revenue/?month=YYYY-MM``."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import Invoice, UsageHour
from tenants.roles import Role
from tests.conftest import make_org

pytestmark = pytest.mark.django_db

URL = "/api/v1/revenue/"
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def invoice(tenant, total: str, currency: str = "USD", plan: str = "") -> Invoice:
    return Invoice.objects.create(
        number=f"GTY-2026-11-{tenant.slug}-0001",
        tenant=tenant,
        tenant_slug=tenant.slug,
        tenant_name=tenant.display_name,
        plan_name=plan or tenant.plan.name,
        period_start=NOV,
        period_end=DEC,
        currency=currency,
        subtotal=Decimal(total),
        total=Decimal(total),
        issued_at=datetime(2026, 12, 1, 3, tzinfo=UTC),
    )


def test_only_operators_see_the_report(org, staff_client):
    for role in (Role.OWNER, Role.VIEWER):
        answer = org.client(role).get(URL, {"month": "2026-11"})
        assert answer.status_code == 403, role
        assert "operators" in answer.json()["error"]["message"]
    assert APIClient().get(URL).status_code in (401, 403)
    assert staff_client.get(URL, {"month": "2026-11"}).status_code == 200


def test_totals_per_currency_and_plan_and_top_tenants(org, other_org, staff_client):
    third = make_org("initech", plan="enterprise")
    invoice(org.tenant, "12.50")
    invoice(other_org.tenant, "100.00")
    invoice(third.tenant, "3000", currency="JPY")
    UsageHour.objects.create(
        tenant=org.tenant, gateway_name="edge", hour=NOV, port=80,
        responses_2xx=1200, responses_5xx=34,
    )  # fmt: skip
    body = staff_client.get(URL, {"month": "2026-11"}).json()
    assert body["month"] == "2026-11"
    assert body["running"] is False
    assert body["totalsByCurrency"] == [
        {"currency": "JPY", "total": "3000", "tenants": 1},
        {"currency": "USD", "total": "112.50", "tenants": 2},
    ]  # yen and dollars are never added together
    assert body["totalsByPlan"] == [
        {"plan": "enterprise", "currency": "JPY", "total": "3000", "tenants": 1},
        {"plan": "standard", "currency": "USD", "total": "112.50", "tenants": 2},
    ]
    acme = next(row for row in body["tenants"] if row["tenant"] == "acme")
    assert acme["requests"] == 1234
    assert acme["final"] is True
    assert acme["invoice"] == "GTY-2026-11-acme-0001"
    assert [row["tenant"] for row in body["topTenants"]][:2] == ["initech", "globex"]


def test_a_month_without_invoices_is_empty(staff_client, org):
    body = staff_client.get(URL, {"month": "2025-01"}).json()
    assert body["tenants"] == [] and body["totalsByCurrency"] == []


def test_the_running_month_comes_from_the_upcoming_computation(staff_client, org):
    body = staff_client.get(URL).json()
    assert body["running"] is True
    acme = next(row for row in body["tenants"] if row["tenant"] == "acme")
    assert acme["final"] is False and acme["invoice"] is None
    assert acme["currency"] == "USD"


@pytest.mark.parametrize("month", ["2026-13", "nov", "2026-1", ""])
def test_a_bad_month_is_a_400_naming_month(staff_client, month):
    answer = staff_client.get(URL, {"month": month})
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert "YYYY-MM" in fields["month"]
