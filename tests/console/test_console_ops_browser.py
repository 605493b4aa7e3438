"""The operators' pages in real Chromium (see test_console_browser.py for how the browser is
driven): an operator creates a tenant with its owner, changes its plan and suspends it, and
the owner then finds a read-only console; a cluster registered against the Kubernetes API
server double passes its connection test; the pages fit a phone and label every control."""

import pytest
import yaml

from provisioning.models import KubernetesCluster
from tenants.models import AuditEvent, Tenant
from tests.conftest import make_user
from tests.console.test_console_browser import log_in, page  # noqa: F401 (a fixture)
from tests.console.test_console_resources_browser import UNLABELLED_CONTROLS, WIDER_THAN_THE_SCREEN
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import KUBECONFIG

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(live_server):
    return make_user("root", is_staff=True)


def test_create_a_tenant_change_its_plan_suspend_it(page, live_server, operator):  # noqa: F811
    make_user("carol")
    log_in(page, live_server, "root", "pw-root")
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Operations").click()
    page.wait_for_url(f"{live_server.url}/ops/tenants/")
    page.get_by_role("link", name="New tenant").click()
    page.get_by_label("Slug").fill("initech")
    page.get_by_label("Display name").fill("Initech")
    page.get_by_label("Plan").select_option("developer")
    page.get_by_label("First owner").fill("nobody")
    page.get_by_role("button", name="Create tenant").click()
    # A mistake is shown at its field; nothing is created.
    error = page.locator("#id_owner_error")
    assert "no active user named 'nobody'" in error.inner_text()
    assert not Tenant.objects.filter(slug="initech").exists()
    page.get_by_label("First owner").fill("carol")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_url(f"{live_server.url}/ops/tenants/initech/")
    assert "Tenant created." in page.get_by_role("status").first.inner_text()

    page.get_by_role("link", name="Change plan").click()
    page.get_by_label("Plan").select_option("enterprise")
    page.get_by_role("button", name="Change plan").click()
    page.wait_for_url(f"{live_server.url}/ops/tenants/initech/")
    assert "Enterprise" in page.locator("dl.facts").inner_text()

    page.get_by_role("link", name="Suspend").click()
    page.get_by_role("button", name="Suspend tenant initech").click()
    page.wait_for_url(f"{live_server.url}/ops/tenants/initech/")
    assert Tenant.objects.get(slug="initech").suspended
    assert [e.action for e in AuditEvent.objects.filter(object_type="tenant").order_by("id")] == [
        "create", "update", "update"]  # fmt: skip

    # Its owner now finds a read-only console: no write controls, and no Operations link.
    page.get_by_role("button", name="Sign out root").click()
    log_in(page, live_server, "carol", "pw-carol")
    page.wait_for_url(f"{live_server.url}/t/initech/")
    assert "suspended: everything is read-only" in page.inner_text("main")
    assert page.get_by_role("link", name="Operations").count() == 0
    page.goto(f"{live_server.url}/t/initech/gateways/")
    assert page.get_by_role("link", name="New gateway").count() == 0
    response = page.goto(f"{live_server.url}/ops/tenants/")
    assert response.status == 404


def test_register_a_cluster_and_test_its_connection(page, live_server, operator):  # noqa: F811
    double = ApiServerDouble().start()
    try:
        config = yaml.safe_load(KUBECONFIG)
        config["clusters"][0]["cluster"]["server"] = double.host
        log_in(page, live_server, "root", "pw-root")
        page.goto(f"{live_server.url}/ops/clusters/")
        page.get_by_role("link", name="Register cluster").click()
        page.get_by_label("Name").fill("lab")
        page.get_by_label("Kubeconfig").fill(yaml.safe_dump(config))
        page.get_by_label("xDS address").fill("xds.example.com")
        page.get_by_label("Standard").check()
        page.get_by_role("button", name="Register cluster").click()
        page.wait_for_url(f"{live_server.url}/ops/clusters/lab/")
        assert "kubeconfig-secret-token" not in page.content()
        page.get_by_role("button", name="Test connection").click()
        result = page.locator("#test-result")
        result.wait_for()
        assert "Connected." in result.inner_text() and "v1.37.0" in result.inner_text()
        assert ("GET", "/version") in double.requests
    finally:
        double.stop()
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete cluster lab").click()
    page.wait_for_url(f"{live_server.url}/ops/clusters/")
    assert not KubernetesCluster.objects.exists()


def test_the_pages_fit_a_phone_and_label_every_control(page, live_server, operator):  # noqa: F811
    owner = make_user("dora")
    from provisioning import cluster_services
    from tenants import services
    from tenants.audit import Actor

    services.create_tenant(Actor.system("tests"), "a-rather-long-tenant-slug", owner.username)
    cluster_services.register_cluster(Actor.system("tests"), {
        "name": "lab", "in_cluster": True, "xds_address": "xds.example.com"})  # fmt: skip
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, "root", "pw-root")
    for path in ("tenants/", "tenants/new/", "tenants/a-rather-long-tenant-slug/",
                 "tenants/a-rather-long-tenant-slug/plan/", "plans/", "plans/new/",
                 "plans/standard/", "clusters/", "clusters/new/", "clusters/lab/",
                 "clusters/lab/edit/", "health/"):  # fmt: skip
        page.goto(f"{live_server.url}/ops/{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width, page.evaluate(WIDER_THAN_THE_SCREEN))
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path
