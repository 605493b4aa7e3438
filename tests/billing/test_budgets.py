"""Monthly budgets: set by a tenant admin (audited, validated), alerts at 80 % and 100 % of the
running month's total recorded once each, the budget API, and the console's banner."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from rest_framework.test import APIClient

from billing import budgets, invoices, prices, rollups
from billing.models import Budget, BudgetAlert, ReplicaHour
from gateways import services
from provisioning import metering
from provisioning.metering import PortCounters
from provisioning.models import ReplicaIncarnation
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db

NOV = datetime(2026, 11, 1, tzinfo=UTC)
URL = "/api/v1/tenants/acme/budget/"


@pytest.fixture(autouse=True)
def _prices(db):
    prices.ensure_default_price_books()  # standard: a small replica-hour is USD 0.025


def hours(n: float) -> datetime:
    return NOV + timedelta(hours=n)


@pytest.fixture
def replica(org):
    """A small replica of gateway edge, running since 1 Nov 00:00 (seen when sampled)."""
    edge = services.create_gateway(ACTOR, org.tenant, "edge", {})
    incarnation = uuid.uuid4()
    metering.open_incarnation(incarnation, edge.pk, "acme/edge/0", "small", 4242, "/runtime")
    ReplicaIncarnation.objects.filter(id=incarnation).update(started_at=NOV, last_seen_at=NOV)
    return incarnation


def seen_at(incarnation, seq: int, hour: float) -> datetime:
    """The replica sampled (no traffic) at ``hour`` hours into November; rollups updated."""
    metering.record_sample(incarnation, seq, hours(hour), {80: PortCounters()})
    rollups.rollup(NOV, hours(hour) + timedelta(hours=1))
    return hours(hour)


def test_the_80_and_100_percent_alerts_fire_once_each(org, replica):
    budgets.set_budget(ACTOR, org.tenant, {"amount": "10.00"})
    # USD 10.00 buys 400 small replica-hours at 0.025.
    assert budgets.check(org.tenant, seen_at(replica, 0, 264)) == []  # 6.60: 66 %
    now = seen_at(replica, 1, 319.9)  # 7.9975 → 8.00 on the invoice: 80 %
    assert [alert.threshold for alert in budgets.check(org.tenant, now)] == [80]
    assert budgets.check(org.tenant, now) == []  # once
    assert budgets.check(org.tenant, seen_at(replica, 2, 384)) == []  # 9.60: 96 %
    now = seen_at(replica, 3, 400)  # 10.00: 100 %
    assert [alert.threshold for alert in budgets.check(org.tenant, now)] == [100]
    assert budgets.check(org.tenant, seen_at(replica, 4, 500)) == []  # 12.50: nothing new
    alerts = BudgetAlert.objects.filter(tenant=org.tenant).order_by("threshold")
    assert [(a.threshold, str(a.total), a.month) for a in alerts] == [
        (80, "8.0000", NOV.date()),
        (100, "10.0000", NOV.date()),
    ]
    events = AuditEvent.objects.filter(object_type="budget", action="alert").order_by("id")
    assert [(e.actor_name, e.after["threshold"], e.after["total"]) for e in events] == [
        ("system:billing", 80, "8.00"),
        ("system:billing", 100, "10.00"),
    ]


def test_a_jump_past_the_budget_records_both_thresholds_and_the_beat_check_finds_them(org, replica):
    budgets.set_budget(ACTOR, org.tenant, {"amount": "1"})
    now = seen_at(replica, 0, 100)  # 2.50: 250 %
    assert budgets.check_budgets(now) == 2
    assert budgets.check_budgets(now) == 0
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [80, 100]


def test_no_budget_no_alerts(org, replica):
    assert budgets.check(org.tenant, seen_at(replica, 0, 700)) == []
    assert not BudgetAlert.objects.exists()


# -- the API ------------------------------------------------------------------------------------


def test_an_admin_sets_the_budget_audited_and_members_read_it(org):
    answer = org.client(Role.ADMIN).put(URL, {"amount": "100.00"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "amount": "100.00",
        "currency": "USD",
        "month": f"{invoices.month_of(datetime.now(UTC)):%Y-%m}",
        "spent": "0.00",
        "percent": 0,
        "alerts": [],
    }
    event = AuditEvent.objects.get(object_type="budget")
    assert (event.action, event.actor_name, event.after) == (
        "create", "acme-admin", {"amount": "100.00", "currency": "USD"}
    )  # fmt: skip
    read = org.client(Role.VIEWER).get(URL)
    assert read.status_code == 200 and read.json()["amount"] == "100.00"


def test_zero_or_null_removes_the_budget(org):
    client = org.client(Role.ADMIN)
    client.put(URL, {"amount": "50"}, format="json")
    assert client.put(URL, {"amount": "0"}, format="json").json()["amount"] is None
    assert not Budget.objects.exists()
    client.put(URL, {"amount": "50"}, format="json")
    assert client.put(URL, {"amount": None}, format="json").json()["percent"] is None
    assert not Budget.objects.exists()
    assert AuditEvent.objects.filter(object_type="budget", action="delete").count() == 2


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ({"amount": "-5"}, "amount", "must not be negative"),
        ({"amount": "abc"}, "amount", "not a decimal"),
        ({"amount": "1.005"}, "amount", "at most 2 decimal places in USD"),
        ({"amount": True}, "amount", "decimal string"),
        ({"amount": "10", "limit": "5"}, "limit", "unknown field"),
    ],
)
def test_a_bad_budget_is_a_400_naming_the_field_and_changes_nothing(org, body, path, words):
    client = org.client(Role.ADMIN)
    client.put(URL, {"amount": "100.00"}, format="json")
    answer = client.put(URL, body, format="json")
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert words in fields[path], fields
    assert str(Budget.objects.get().amount) == "100.0000"
    assert AuditEvent.objects.filter(object_type="budget").count() == 1


def test_roles_and_tenants(org, other_org):
    for role in (Role.VIEWER, Role.EDITOR):
        refused = org.client(role).put(URL, {"amount": "5"}, format="json")
        assert refused.status_code == 403, role
        assert org.client(role).get(URL).status_code == 200
    assert not Budget.objects.exists()
    assert other_org.client(Role.OWNER).get(URL).status_code == 404
    assert other_org.client(Role.OWNER).put(URL, {"amount": "5"}, format="json").status_code == 404
    assert APIClient().get(URL).status_code == 401
    assert not Budget.objects.exists()


# -- the console banner -------------------------------------------------------------------------


def test_the_console_shows_a_banner_once_this_months_alert_exists(org):
    client = Client()
    client.force_login(org.users[Role.VIEWER])
    budgets.set_budget(ACTOR, org.tenant, {"amount": "10.00"})
    start, _ = invoices.month_bounds(invoices.month_of(datetime.now(UTC)))
    # 332 small replica-hours this month: 332 × 0.025 = USD 8.30 of 10.00, 83 %.
    ReplicaHour.objects.create(tenant=org.tenant, gateway_name="edge", hour=start, size="small",
                               milliseconds=332 * 3_600_000)  # fmt: skip
    page = client.get("/t/acme/")
    assert page.status_code == 200 and "monthly budget" not in page.content.decode()
    assert [alert.threshold for alert in budgets.check(org.tenant)] == [80]
    text = client.get("/t/acme/").content.decode()
    assert "You have used 83 % of your monthly budget (USD 10.00)." in text
    assert "You have used 83 %" in client.get("/t/acme/tokens/").content.decode()
