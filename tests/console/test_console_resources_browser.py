"""The console's gateway and route pages in real Chromium (see test_console_browser.py for how
the browser is driven): create a gateway and watch its status settle through htmx polling,
a route mistake shown next to the field that caused it, a viewer without write controls whose
forged POST is refused, delete with confirmation, and the pages at a phone's width and by
keyboard."""

import time

import pytest

from gateways import services
from gateways.models import Gateway, Route
from provisioning import tasks
from tenants.audit import Actor
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.conftest import make_org
from tests.console.test_console_browser import log_in, page  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("tests")


@pytest.fixture
def acme(live_server, monkeypatch):
    """Tenant acme with a user per role; reconciles are recorded, not sent to a worker."""
    sent = []
    monkeypatch.setattr(tasks, "send_reconcile", lambda gateway_id, **kw: sent.append(gateway_id))
    org = make_org("acme")
    org.reconciles = sent
    return org


def sign_in_as(page, live_server, org, role):  # noqa: F811
    username = org.users[role].username
    log_in(page, live_server, username, f"pw-{username}")
    page.wait_for_url(f"{live_server.url}/t/acme/")


def make_ready(gateway: Gateway, url: str) -> None:
    """What the platform reports once every replica runs the gateway's config."""
    gateway.refresh_from_db()
    status = dict(gateway.status, phase="Ready", observedGeneration=gateway.generation)
    status["replicas"] = {"desired": gateway.spec["replicas"], "ready": gateway.spec["replicas"]}
    status["conditions"] = [
        dict(c, status="True", reason="Programmed", message="every replica runs revision 1")
        if c["type"] == "Programmed" else c
        for c in status["conditions"]
    ]  # fmt: skip
    status["listeners"] = [dict(status["listeners"][0], url=url)]
    Gateway.objects.filter(pk=gateway.pk).update(status=status)


def test_an_editor_creates_a_gateway_and_its_page_follows_it_to_ready(page, live_server, acme):  # noqa: F811
    sign_in_as(page, live_server, acme, Role.EDITOR)
    page.get_by_role("navigation", name="tenant").get_by_role("link", name="Gateways").click()
    page.get_by_role("link", name="New gateway").click()
    page.get_by_label("Name").fill("edge")
    page.get_by_label("Replicas").fill("2")
    page.get_by_role("button", name="Create gateway").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/")
    assert page.get_by_role("status").inner_text() == "Gateway created."
    status = page.locator("#gateway-status")
    assert status.get_attribute("data-settled") == "false"
    assert "applying changes" in status.inner_text()

    gateway = Gateway.objects.get(name="edge")
    assert gateway.spec["replicas"] == 2
    event = AuditEvent.objects.get(action="create", object_type="gateway", object_name="edge")
    assert event.actor_name == acme.users[Role.EDITOR].username
    assert acme.reconciles == [gateway.pk]

    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/status/" in request.url
            else None)  # fmt: skip
    make_ready(gateway, "http://127.0.0.1:20999/")
    page.wait_for_selector('#gateway-status[data-settled="true"]', timeout=10_000)
    assert "Ready" in status.inner_text()
    assert "2 of 2 replicas ready" in status.inner_text()
    assert status.get_by_role("link", name="http://127.0.0.1:20999/").is_visible()
    settled_after = len(polls)
    assert settled_after >= 1
    time.sleep(4.5)  # two polling periods: a settled page asks no more
    assert len(polls) == settled_after


def test_a_route_mistake_is_shown_next_to_its_field_and_nothing_is_saved(page, live_server, acme):  # noqa: F811
    services.create_gateway(SYSTEM, acme.tenant, "edge", {})
    sign_in_as(page, live_server, acme, Role.EDITOR)
    page.goto(f"{live_server.url}/t/acme/gateways/edge/")
    page.get_by_role("link", name="Routes (0)").click()
    page.get_by_role("link", name="New route").click()
    page.get_by_label("Name", exact=True).fill("web")
    spec = page.get_by_label("Whole spec (YAML or JSON)")
    spec.fill("rules:\n- backendRefs:\n  - name: Bad_Name\n")
    page.get_by_role("button", name="Create from spec").click()
    field = page.locator(".field", has=spec)
    errors = field.locator(".errorlist")
    assert "spec.rules[0].backendRefs[0].name: must be a DNS label" in errors.inner_text()
    assert spec.get_attribute("aria-invalid") == "true"
    assert page.get_by_role("alert").first.inner_text().startswith("Nothing was saved")
    assert spec.input_value() == "rules:\n- backendRefs:\n  - name: Bad_Name\n"
    assert not Route.objects.exists()

    spec.fill("rules:\n- backendRefs:\n  - name: app\n")
    page.get_by_role("button", name="Create from spec").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/web/")
    resolved = page.locator('tr[data-condition="ResolvedRefs"]')
    assert "BackendNotFound" in resolved.inner_text()

    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Backend").fill("Also_Bad")
    page.get_by_role("button", name="Save fields").click()
    backend_field = page.locator(".field", has=page.get_by_label("Backend"))
    assert "must be a DNS label" in backend_field.locator(".errorlist").inner_text()
    assert Route.objects.get(name="web").spec["rules"][0]["backendRefs"][0]["name"] == "app"
    assert Route.objects.get(name="web").generation == 1


def test_a_viewer_sees_no_write_controls_and_a_forged_post_is_403(page, live_server, acme):  # noqa: F811
    gateway = services.create_gateway(SYSTEM, acme.tenant, "edge", {})
    services.create_route(SYSTEM, gateway, "web", {})
    other = make_org("globex")
    services.create_gateway(SYSTEM, other.tenant, "theirs", {})
    sign_in_as(page, live_server, acme, Role.VIEWER)
    pages = ("gateways/", "gateways/edge/", "gateways/edge/routes/", "gateways/edge/routes/web/")
    for path in pages:
        page.goto(f"{live_server.url}/t/acme/{path}")
        for name in ("New gateway", "Scale", "Delete", "Edit", "New route"):
            assert page.get_by_role("link", name=name, exact=True).count() == 0, (path, name)
        assert page.get_by_role("button").filter(has_text="Delete").count() == 0

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    headers = {"X-CSRFToken": csrf, "Referer": f"{live_server.url}/t/acme/gateways/edge/"}
    for path, data in (("scale/", {"replicas": "4"}), ("delete/", {}), ("routes/web/delete/", {})):
        response = page.request.post(f"{live_server.url}/t/acme/gateways/edge/{path}",
                                     form=data, headers=headers, max_redirects=0)  # fmt: skip
        assert response.status == 403, path
    gateway.refresh_from_db()
    assert gateway.spec["replicas"] == 1
    assert Route.objects.filter(name="web").exists()

    response = page.goto(f"{live_server.url}/t/globex/gateways/theirs/")
    assert response.status == 404
    assert "Not Found" in page.inner_text("h1")


def test_deleting_a_gateway_asks_first(page, live_server, acme):  # noqa: F811
    gateway = services.create_gateway(SYSTEM, acme.tenant, "edge", {})
    services.create_route(SYSTEM, gateway, "web", {})
    sign_in_as(page, live_server, acme, Role.EDITOR)
    page.goto(f"{live_server.url}/t/acme/gateways/edge/")
    page.get_by_role("link", name="Delete").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Delete gateway edge?"
    assert "Its 1 route and 0 policies are deleted with it" in page.inner_text("main")
    assert Gateway.objects.filter(name="edge").exists()
    page.get_by_role("button", name="Delete gateway edge").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/")
    assert page.get_by_role("status").inner_text() == "Gateway edge deleted."
    assert not Gateway.objects.exists()
    assert AuditEvent.objects.filter(action="delete", object_type="gateway").exists()


WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > 391)
  .filter(el => !el.closest('td, th'))
  .map(el => el.tagName + '.' + el.className).slice(0, 5)"""
UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.innerText.trim()))
  .map(el => el.outerHTML)"""


def test_pages_fit_a_phone_and_work_by_keyboard(page, live_server, acme):  # noqa: F811
    gateway = services.create_gateway(SYSTEM, acme.tenant, "a-rather-long-gateway-name", {})
    services.create_route(SYSTEM, gateway, "web", {"hostnames": ["a.example.com"]})
    services.create_consumer(SYSTEM, acme.tenant, "mobile", {"description": "the iOS app"})
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_as(page, live_server, acme, Role.OWNER)
    base = f"{live_server.url}/t/acme/"
    for path in ("", "gateways/", "gateways/new/", f"gateways/{gateway.name}/",
                 f"gateways/{gateway.name}/routes/", f"gateways/{gateway.name}/routes/web/edit/",
                 "backends/", "backends/new/", "certificates/", "certificates/new/",
                 "consumers/", "consumers/new/", "consumers/mobile/",
                 "members/", "audit/", "tokens/"):  # fmt: skip
        page.goto(base + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(WIDER_THAN_THE_SCREEN)
        assert width <= 390, (path, width, wide)
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path

    page.goto(base + "gateways/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.innerText") == "Skip to content"
    for _ in range(12):  # on through the header to the navigation
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('nav.mainnav') !== null"):
            break
    focused = page.evaluate("""() => { const s = getComputedStyle(document.activeElement);
        return [document.activeElement.innerText, s.outlineStyle, parseFloat(s.outlineWidth)]; }""")
    assert focused[0] == "Dashboard"
    assert focused[1] != "none" and focused[2] >= 2
    page.keyboard.press("Enter")
    page.wait_for_url(base)
