"""A gateway's revisions in the console, and rolling back through a confirmation page: the
same rollback the API runs (compiled again, checked by Envoy, audited), editors only."""

import re

import pytest
from django.test import Client

from gateways import services
from gateways.models import Route
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.reconcile import reconcile
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api.pki import certificate
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec

URL = "/t/acme/gateways/edge/revisions/"


@pytest.fixture
def edge(org):
    """Gateway edge with two revisions: 2 (serving) and 1."""
    gateway = gateway_with_route(org.tenant)
    reconcile(gateway.pk)
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))
    reconcile(gateway.pk)
    return gateway


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rollback_links(html: str) -> list[str]:
    return re.findall(r">Roll back to (\d+)<", html)


def test_members_see_revisions_and_only_editors_may_roll_back(org, edge):
    viewer = signed_in(org.users[Role.VIEWER])
    text = viewer.get(URL).content.decode()
    assert re.findall(r'revisions/(\d+)/">', text) == ["2", "1"]
    assert "serving" in text
    assert rollback_links(text) == []
    assert viewer.get(URL + "1/rollback/").status_code == 403
    assert viewer.post(URL + "1/rollback/").status_code == 403
    assert ConfigRevision.objects.filter(gateway=edge).count() == 2

    editor = signed_in(org.users[Role.EDITOR])
    assert rollback_links(editor.get(URL).content.decode()) == ["1"]  # not the one serving
    assert editor.get(URL + "9/rollback/").status_code == 404
    assert (
        signed_in(org.users[Role.EDITOR]).get("/t/acme/gateways/nope/revisions/").status_code == 404
    )


def test_an_editor_rolls_back_after_confirming(org, edge):
    editor = signed_in(org.users[Role.EDITOR])
    page = editor.get(URL + "1/rollback/").content.decode()
    assert "Roll back edge to revision 1?" in page
    assert "serves revision 2 now" in page
    assert ConfigRevision.objects.filter(gateway=edge).count() == 2  # asking changes nothing

    response = editor.post(URL + "1/rollback/")
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/gateways/edge/"
    restored = ConfigRevision.objects.get(gateway=edge, current=True)
    assert (restored.number, restored.restored_from) == (3, 1)
    operation = GatewayOperation.objects.get(gateway=edge, kind="rollback")
    assert operation.created_by == org.users[Role.EDITOR].username
    event = AuditEvent.objects.get(action="rollback", object_name="edge")
    assert event.actor_name == org.users[Role.EDITOR].username
    assert event.after == {"revision": 3, "restores": 1}
    detail = editor.get("/t/acme/gateways/edge/").content.decode()
    assert "Rolled back" in detail and "restores revision 1" in detail


def test_a_refused_rollback_is_shown_and_changes_nothing(org, edge):
    ConfigRevision.objects.filter(gateway=edge, number=1).update(state="rejected")
    editor = signed_in(org.users[Role.EDITOR])
    response = editor.post(URL + "1/rollback/")
    assert response.status_code == 400
    assert "revision 1 was rejected by Envoy" in response.content.decode()
    assert ConfigRevision.objects.filter(gateway=edge).count() == 2
    assert not AuditEvent.objects.filter(action="rollback").exists()


def test_a_revision_shows_its_config_with_keys_redacted_and_what_changed(org, edge):
    chain, key = certificate(("app.example.com",))
    services.create_certificate(ACTOR, org.tenant, "app-cert",
                                {"certificatePem": chain, "privateKeyPem": key})  # fmt: skip
    https = {"name": "https", "protocol": "HTTPS", "port": 443,
             "tls": {"certificateRefs": [{"name": "app-cert"}]}}  # fmt: skip
    services.patch_gateway_spec(ACTOR, edge, {"listeners": [https]})
    reconcile(edge.pk)
    number = ConfigRevision.objects.get(gateway=edge, current=True).number
    viewer = signed_in(org.users[Role.VIEWER])
    text = viewer.get(f"{URL}{number}/").content.decode()
    assert "private_key" in text and "&lt;redacted " in text
    assert key.splitlines()[1] not in text and "PRIVATE KEY" not in text
    assert f"Changes since revision {number - 1}" in text
    assert "+" in text.split("unified diff")[1]
    assert "Roll back to" not in text
    assert viewer.get(f"{URL}99/").status_code == 404
