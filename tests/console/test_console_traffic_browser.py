"""The traffic pages in real Chromium: a gateway's access-log browser filtered by status class
and consumer, a route's and a consumer's charts from the analytics rollups, and the top routes
table on the gateway's usage page; all fit 390 px and label every control."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import analytics
from gateways import services
from provisioning.models import AccessLogEntry
from tenants.roles import Role
from tests.conftest import make_org
from tests.console.test_console_browser import page  # noqa: F401 (a fixture)
from tests.console.test_console_resources_browser import (
    UNLABELLED_CONTROLS,
    WIDER_THAN_THE_SCREEN,
    sign_in_as,
)
from tests.delivery.helpers import ACTOR
from tests.runtime.test_access_logs import route

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
HOSTILE = "/api/<img src=x onerror=alert(1)>"


def traffic(org) -> None:
    """Requests as the runtime agent stores them, then the rollup."""
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    services.create_route(ACTOR, gateway, "api", route("/api"))
    services.create_consumer(ACTOR, org.tenant, "alice", {})
    now = timezone.now()
    rows = [("api", "alice", 200, "/api/a"), ("api", "alice", 503, "/api/b"),
            ("api", "", 401, HOSTILE), ("", "", 404, "/nowhere"),
            ("api", "alice", 200, "/api/c")]  # fmt: skip
    AccessLogEntry.objects.bulk_create(
        AccessLogEntry(tenant=org.tenant, gateway_name="edge", replica=0, incarnation=uuid.uuid4(),
                       segment=0, offset=n, timestamp=now - timedelta(seconds=10 * n),
                       request_id=f"req-{n}", method="GET", path=path, status=status,
                       route=name, consumer=consumer, duration_ms=12 + n, upstream_ms=10 + n)
        for n, (name, consumer, status, path) in enumerate(rows)
    )  # fmt: skip
    analytics.rollup_recent()


def table_paths(page) -> list[str]:  # noqa: F811
    return page.locator("table.data tbody tr td:nth-child(3)").all_inner_texts()


def test_access_logs_filtered_and_a_routes_charts(page, live_server):  # noqa: F811
    org = make_org("acme")
    traffic(org)
    sign_in_as(page, live_server, org, Role.VIEWER)
    base = f"{live_server.url}/t/acme/gateways/edge/"
    page.goto(base)
    page.get_by_role("link", name="Access logs").click()
    page.wait_for_url(base + "access-logs/")
    assert len(table_paths(page)) == 5
    assert HOSTILE in table_paths(page)  # shown as text, not markup
    assert page.locator("img[src=x]").count() == 0
    page.get_by_label("Status").fill("2xx")
    page.get_by_label("Consumer").fill("alice")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/access-logs/?*status=2xx*")
    assert sorted(table_paths(page)) == ["/api/a", "/api/c"]
    page.get_by_label("Status").fill("6xx")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/access-logs/?*status=6xx*")
    assert "must be a status (404) or a class (5xx)" in page.content()
    assert "No requests match." in page.content()

    page.goto(base + "routes/api/")
    requests_chart = page.locator("figure.chart").first
    assert "4 in all" in requests_chart.locator("desc").text_content()
    errors = page.locator("figure.chart").nth(1).locator("desc").text_content()
    assert "1 4xx and 1 5xx in all" in errors
    assert page.locator("figure.chart").nth(2).locator("polyline").count() == 2  # both p99s

    page.goto(f"{live_server.url}/t/acme/consumers/alice/")
    assert "3 in all" in page.locator("figure.chart").first.locator("desc").text_content()

    page.goto(base + "usage/")
    top = page.get_by_role("region", name="Top routes, last 24 hours")
    cells = top.locator("tbody tr").first.locator("th, td").all_inner_texts()
    assert cells[:4] == ["api", "4", "1", "1"]
    assert "(no route matched)" in top.inner_text()


def test_the_traffic_pages_fit_a_phone_and_label_every_control(page, live_server):  # noqa: F811
    org = make_org("acme")
    traffic(org)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_as(page, live_server, org, Role.OWNER)
    base = f"{live_server.url}/t/acme/"
    for path in ("gateways/edge/access-logs/?status=5xx", "gateways/edge/routes/api/",
                 "consumers/alice/", "gateways/edge/usage/"):  # fmt: skip
        assert page.goto(base + path).status == 200, path
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width, page.evaluate(WIDER_THAN_THE_SCREEN))
