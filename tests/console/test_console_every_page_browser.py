"""Every console page in real Chromium, once each (each kept as a screenshot under
``var/screenshots/``), as the tenant's owner; the new pages (revisions compared, operations,
an audit event, usage) at a phone's width and by keyboard too."""

import re
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from billing import rollups
from billing.models import ReplicaHour, UsageHour
from gateways import services
from gateways.models import Route
from provisioning.models import GatewayOperation
from provisioning.reconcile import reconcile
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api.pki import certificate
from tests.console.test_console_browser import page  # noqa: F401 (a fixture)
from tests.console.test_console_resources_browser import (
    UNLABELLED_CONTROLS,
    WIDER_THAN_THE_SCREEN,
    acme,  # noqa: F401 (a fixture)
    sign_in_as,
)
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def furnish(org):
    """A gateway with a route, a policy, two revisions and their operations, a certificate,
    a consumer with a credential, usage in the last hours."""
    gateway = gateway_with_route(org.tenant)
    reconcile(gateway.pk)
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))
    reconcile(gateway.pk)
    services.create_policy(ACTOR, gateway, "slow", "BackendTrafficPolicy",
                           {"targetRefs": [{"kind": "HTTPRoute", "name": "api"}],
                            "timeout": {"http": {"requestTimeout": "2s"}}})  # fmt: skip
    chain, key = certificate(("app.example.com",))
    services.create_certificate(ACTOR, org.tenant, "app-cert",
                                {"certificatePem": chain, "privateKeyPem": key})  # fmt: skip
    consumer = services.create_consumer(ACTOR, org.tenant, "mobile", {"description": "iOS"})
    credential, _ = services.create_credential(ACTOR, consumer, {"type": "api-key"})
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    for back in range(6):
        UsageHour.objects.create(tenant=org.tenant, gateway_name="edge", port=80,
                                 hour=hour - timedelta(hours=back), responses_2xx=50 + back * 9,
                                 responses_4xx=back, responses_5xx=back % 2,
                                 latency={"2": 40, "25": 10 + back})  # fmt: skip
        ReplicaHour.objects.create(tenant=org.tenant, gateway_name="edge", size="small",
                                   hour=hour - timedelta(hours=back),
                                   milliseconds=3_600_000)  # fmt: skip
    rollups.roll_days(hour - timedelta(hours=5), hour + timedelta(hours=1))
    return gateway, credential


def every_page(gateway, credential) -> list[str]:
    operation = GatewayOperation.objects.filter(gateway=gateway).first().pk
    event = AuditEvent.objects.filter(action="update", object_type="route").first().pk
    edge = "gateways/edge/"
    return [
        "", "gateways/", "gateways/new/", edge, edge + "scale/", edge + "delete/",
        edge + "status/",
        edge + "routes/", edge + "routes/new/", edge + "routes/api/", edge + "routes/api/edit/",
        edge + "routes/api/delete/",
        edge + "policies/", edge + "policies/new/", edge + "policies/slow/",
        edge + "policies/slow/edit/", edge + "policies/slow/delete/", "policies/",
        edge + "revisions/", edge + "revisions/1/", edge + "revisions/1/rollback/",
        edge + "revisions/compare/?from=1&to=2", edge + "operations/",
        edge + f"operations/{operation}/", edge + "usage/", edge + "access-logs/",
        "backends/", "backends/new/", "backends/api/", "backends/api/edit/",
        "backends/api/delete/",
        "certificates/", "certificates/new/", "certificates/app-cert/",
        "certificates/app-cert/edit/", "certificates/app-cert/delete/",
        "consumers/", "consumers/new/", "consumers/mobile/", "consumers/mobile/edit/",
        "consumers/mobile/delete/", f"consumers/mobile/credentials/{credential.key_id}/delete/",
        "members/", "members/acme-viewer/", "members/acme-viewer/remove/", "tokens/",
        "audit/", "audit/?actor=system%3Atests&objectType=route", f"audit/{event}/",
        "usage/", "usage/?range=30d",
    ]  # fmt: skip


def test_the_owner_visits_every_page(page, live_server, acme):  # noqa: F811
    gateway, credential = furnish(acme)
    sign_in_as(page, live_server, acme, Role.OWNER)
    base = f"{live_server.url}/t/acme/"
    for path in every_page(gateway, credential):
        response = page.goto(base + path)
        assert response.status == 200, (path, response.status)
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path
    assert len(page.screenshots.saved) >= len(every_page(gateway, credential))


NEW_PAGES = (
    "gateways/edge/revisions/", "gateways/edge/revisions/compare/?from=1&to=2",
    "gateways/edge/operations/", "gateways/edge/usage/", "usage/", "audit/",
)  # fmt: skip


def test_the_new_pages_fit_a_phone_and_compare_works_by_keyboard(page, live_server, acme):  # noqa: F811
    gateway, _ = furnish(acme)
    event = AuditEvent.objects.filter(action="update", object_type="route").first().pk
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_as(page, live_server, acme, Role.OWNER)
    base = f"{live_server.url}/t/acme/"
    for path in (*NEW_PAGES, f"audit/{event}/"):
        page.goto(base + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width, page.evaluate(WIDER_THAN_THE_SCREEN))
    # The side-by-side diff stacks: each changed line's old and new one above the other.
    page.goto(base + "gateways/edge/revisions/compare/?from=1&to=2")
    changed = page.locator("table.sbs tr.changed").first
    old, new = changed.locator("td.code.old"), changed.locator("td.code.new")
    assert old.bounding_box()["y"] < new.bounding_box()["y"]
    assert "/api" in old.inner_text() and "/v2" in new.inner_text()

    # By keyboard: from the revisions list, pick 2 then 1 and compare.
    page.goto(base + "gateways/edge/revisions/")
    page.get_by_label("Old revision (left)").focus()
    page.keyboard.press("ArrowDown")  # 2 → 1 (newest first)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.innerText") == "Compare"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}gateways/edge/revisions/compare/?from=1&to=2")
    assert page.get_by_role("heading", name="Revision 1 → revision 2").is_visible()

    # The usage charts say what they show, and their data is one click (or key) away.
    page.goto(base + "usage/")
    chart = page.get_by_role("img", name=re.compile("^Requests Requests answered per hour"))
    assert chart.count() == 1
    page.get_by_text("Data table").first.focus()
    page.keyboard.press("Enter")
    assert page.get_by_role("table", name="Requests (requests)").is_visible()
