"""The billing pages in real Chromium: an admin sets a budget, the running month crosses 80 %
of it (usage rows written directly, as the rollups would), the banner shows; then an invoice
opens and its PDF downloads."""

from pathlib import Path

import pytest
from django.utils import timezone

from billing import budgets, invoices, prices
from billing.models import ReplicaHour
from tenants.roles import Role
from tests.conftest import make_org, make_user
from tests.console.test_console_billing import invoice, lines
from tests.console.test_console_browser import log_in, page  # noqa: F401 (a fixture)
from tests.console.test_console_resources_browser import (
    UNLABELLED_CONTROLS,
    WIDER_THAN_THE_SCREEN,
    sign_in_as,
)
from tests.delivery.helpers import ACTOR

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_budget_banner_then_an_invoice_and_its_pdf(page, live_server):  # noqa: F811
    prices.ensure_default_price_books()  # standard: a small replica-hour is USD 0.025
    org = make_org("acme")
    sign_in_as(page, live_server, org, Role.ADMIN)
    page.goto(f"{live_server.url}/t/acme/budget/")
    page.get_by_label("Monthly budget").fill("10.00")
    page.get_by_role("button", name="Save budget").click()
    page.wait_for_url(f"{live_server.url}/t/acme/budget/")
    assert "10.00 USD" in page.locator("#budget-amount").inner_text()

    # 330 small replica-hours this month: USD 8.25, 82 % of the budget.
    start, _ = invoices.month_bounds(invoices.month_of(timezone.now()))
    ReplicaHour.objects.create(tenant=org.tenant, gateway_name="edge", hour=start,
                               size="small", milliseconds=330 * 3_600_000)  # fmt: skip
    assert [alert.threshold for alert in budgets.check(org.tenant)] == [80]
    page.goto(f"{live_server.url}/t/acme/")
    assert "You have used 82 % of your monthly budget" in page.content()

    lines(invoice(org.tenant, "12.50"))
    page.get_by_role("link", name="Invoices").first.click()
    page.wait_for_url(f"{live_server.url}/t/acme/invoices/")
    page.get_by_role("link", name="GTY-2026-11-acme-0001").click()
    page.wait_for_url(f"{live_server.url}/t/acme/invoices/GTY-2026-11-acme-0001/")
    assert "12.50 USD" in page.locator("#invoice-total").inner_text()
    with page.expect_download() as download:
        page.locator("#download-pdf").click()
    content = Path(download.value.path()).read_bytes()
    assert content.startswith(b"%PDF")
    assert download.value.suggested_filename == "GTY-2026-11-acme-0001.pdf"


def test_the_billing_pages_fit_a_phone_and_label_every_control(page, live_server):  # noqa: F811
    prices.ensure_default_price_books()
    org = make_org("acme")
    lines(invoice(org.tenant, "12.50"))
    budgets.set_budget(ACTOR, org.tenant, {"amount": "10.00"})
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_as(page, live_server, org, Role.OWNER)
    base = f"{live_server.url}/t/acme/"
    for path in ("invoices/", "invoices/GTY-2026-11-acme-0001/", "invoices/upcoming/", "budget/"):
        assert page.goto(base + path).status == 200, path
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width, page.evaluate(WIDER_THAN_THE_SCREEN))


def test_the_revenue_page_fits_a_phone(page, live_server):  # noqa: F811
    prices.ensure_default_price_books()
    org = make_org("acme")
    invoice(org.tenant, "12.50")
    make_user("root", is_staff=True)  # password pw-root
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, "root", "pw-root")
    for month in ("2026-11", ""):
        assert page.goto(f"{live_server.url}/ops/revenue/?month={month}").status == 200
        assert page.evaluate(UNLABELLED_CONTROLS) == [], month
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (month, width, page.evaluate(WIDER_THAN_THE_SCREEN))
    assert "12.50 USD" in page.goto(f"{live_server.url}/ops/revenue/?month=2026-11").text()
