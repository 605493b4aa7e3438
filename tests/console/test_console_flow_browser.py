"""The whole flow of a route and of a policy in real Chromium, against a real platform: the
xDS server and the runtime agent run real Envoy replicas (``stack``), serving a loopback
upstream (``upstream``). Create in the console → the gateway is Ready and the change is served
→ change it → its new revision → the diff of the two → roll back → delete.

Reconciles run here, in the test, after each console write (a worker would run the same
function), so each step waits on what Envoy serves, not on a queue."""

import re

import pytest
import requests

from gateways import services
from gateways.models import Gateway
from provisioning.models import ConfigRevision
from provisioning.reconcile import reconcile
from tenants.roles import Role
from tests.conftest import make_org
from tests.console.test_console_browser import page  # noqa: F401 (a fixture)
from tests.console.test_console_resources_browser import sign_in_as
from tests.delivery.helpers import ACTOR
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def served(live_server, stack, upstream):
    """Tenant acme: backend ``app`` (the upstream) and gateway ``edge`` (one replica), Ready."""
    org = make_org("acme")
    services.create_backend(ACTOR, org.tenant, "app", upstream.backend())
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {"replicas": 1})
    assert reconcile(gateway.pk).result == "created"
    wait_for(lambda: Gateway.objects.get(pk=gateway.pk).status.get("phase") == "Ready",
             timeout=30, interval=0.05, message=stack.logs)  # fmt: skip
    org.gateway, org.stack = gateway, stack
    return org


def url_of(gateway) -> str:
    return Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"]


def answers(gateway, path: str, status: int, headers=None) -> None:
    """Waits until Envoy answers ``path`` with ``status`` (config reaches it in a moment)."""

    def check():
        try:
            response = requests.get(url_of(gateway) + path.lstrip("/"), headers=headers, timeout=5)
        except requests.ConnectionError:
            return False
        return response.status_code == status

    wait_for(check, timeout=30, interval=0.2, message=f"{path} answering {status}")


def applied(tab, org) -> None:
    """Reconciles (as the worker would) and watches the gateway's page settle on Ready."""
    reconcile(org.gateway.pk)
    tab.goto(f"{tab.url.split('/t/')[0]}/t/acme/gateways/edge/")
    tab.wait_for_selector('#gateway-status[data-settled="true"]', timeout=30_000)
    assert "Ready" in tab.locator("#gateway-status").inner_text()


def serving(org) -> int:
    return ConfigRevision.objects.get(gateway=org.gateway, current=True).number


def compare_and_roll_back(tab, live_server, org, old: int, new: int, removed: str, added: str):
    """The revisions list: the newest is served; compare it with the one before (the form's
    default), then roll back to the old one after confirming."""
    base = f"{live_server.url}/t/acme/gateways/edge/revisions/"
    tab.goto(base)
    assert tab.locator("table.data tbody tr").first.locator("td").first.inner_text() == str(new)
    assert tab.get_by_label("Old revision (left)").input_value() == str(old)
    assert tab.get_by_label("New revision (right)").input_value() == str(new)
    tab.get_by_role("button", name="Compare").click()
    tab.wait_for_url(f"{base}compare/?from={old}&to={new}")
    changed = tab.locator("table.sbs tr.changed, table.sbs tr.removed, table.sbs tr.added")
    old_side = " ".join(changed.locator("td.code.old").all_inner_texts())
    new_side = " ".join(changed.locator("td.code.new").all_inner_texts())
    assert removed in old_side and added in new_side, (old_side, new_side)

    tab.goto(base)
    tab.get_by_role("link", name=f"Roll back to {old}", exact=True).click()
    tab.get_by_role("button", name=f"Roll back to revision {old}").click()
    tab.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/")
    assert tab.get_by_role("status").first.inner_text().startswith("Rolled back")
    restored = ConfigRevision.objects.get(gateway=org.gateway, current=True)
    assert restored.restored_from == old and restored.number == new + 1


def test_a_route_created_changed_compared_rolled_back_and_deleted(page, live_server, served):  # noqa: F811
    org, gateway = served, served.gateway
    sign_in_as(page, live_server, org, Role.EDITOR)
    page.goto(f"{live_server.url}/t/acme/gateways/edge/")
    page.wait_for_selector('#gateway-status[data-settled="true"]', timeout=30_000)
    first = serving(org)

    # Create.
    page.get_by_role("link", name=re.compile(r"^Routes \(")).click()
    page.get_by_role("link", name="New route").click()
    page.get_by_label("Name", exact=True).fill("web")
    page.get_by_label("Path", exact=True).fill("/v1")
    page.get_by_label("Backend").fill("app")
    page.get_by_role("button", name="Create from fields").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/web/")
    applied(page, org)
    answers(gateway, "/v1", 200)
    created = serving(org)
    assert created == first + 1

    # Change.
    page.goto(f"{live_server.url}/t/acme/gateways/edge/routes/web/edit/")
    page.get_by_label("Path", exact=True).fill("/v2")
    page.get_by_role("button", name="Save fields").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/web/")
    applied(page, org)
    answers(gateway, "/v2", 200)
    answers(gateway, "/v1", 404)
    changed = serving(org)

    # The new revision, its diff, and a rollback to the one before.
    compare_and_roll_back(page, live_server, org, created, changed, "/v1", "/v2")
    answers(gateway, "/v1", 200)

    # Delete (after confirming).
    page.goto(f"{live_server.url}/t/acme/gateways/edge/routes/web/")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete route web").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/")
    applied(page, org)
    answers(gateway, "/v1", 404)
    answers(gateway, "/v2", 404)


POLICY = """targetRefs:
- kind: Gateway
  name: edge
timeout:
  http:
    requestTimeout: {timeout}
"""


def test_a_policy_created_changed_compared_rolled_back_and_deleted(page, live_server, served):  # noqa: F811
    org, gateway = served, served.gateway
    services.create_route(ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "app"}]}]})
    reconcile(gateway.pk)
    answers(gateway, "/", 200)
    slow = {"X-Delay-Ms": "1500"}
    answers(gateway, "/", 200, slow)  # no timeout yet: a slow answer arrives
    sign_in_as(page, live_server, org, Role.EDITOR)

    # Create: a 5 s request timeout on the gateway.
    page.goto(f"{live_server.url}/t/acme/gateways/edge/policies/")
    page.get_by_role("link", name="New policy").click()
    page.get_by_label("Name").fill("timeouts")
    page.get_by_label("Kind").select_option("BackendTrafficPolicy")
    page.get_by_label("Spec (YAML or JSON)").fill(POLICY.format(timeout="5s"))
    page.get_by_role("button", name="Create policy").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/policies/timeouts/")
    applied(page, org)
    answers(gateway, "/", 200, slow)
    created = serving(org)

    # Change: 1 s, and the slow answer is a gateway timeout.
    page.goto(f"{live_server.url}/t/acme/gateways/edge/policies/timeouts/")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Spec (YAML or JSON)").fill(POLICY.format(timeout="1s"))
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/policies/timeouts/")
    applied(page, org)
    answers(gateway, "/", 504, slow)
    changed = serving(org)
    assert changed == created + 1

    compare_and_roll_back(
        page, live_server, org, created, changed, "timeout: 5.000s", "timeout: 1.000s"
    )
    answers(gateway, "/", 200, slow)

    # Delete (after confirming).
    page.goto(f"{live_server.url}/t/acme/gateways/edge/policies/timeouts/")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete policy timeouts").click()
    page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/policies/")
    applied(page, org)
    assert serving(org) > changed + 1  # the deletion is a revision of its own
