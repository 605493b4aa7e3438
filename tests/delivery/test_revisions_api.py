"""The revisions and operations API: list, show (YAML, keys redacted), diff, roll back."""

import json

from django.db import connection

from config.crypto import COMPRESSED, encrypt
from gateways import services
from gateways.models import Route
from provisioning import envoy, revisions
from provisioning.desired import load_desired_state
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.reconcile import reconcile
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api import pki
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec

BASE = "/api/v1/tenants/acme/gateways/edge/"


def two_revisions(org):
    gateway = gateway_with_route(org.tenant)
    reconcile(gateway.pk)
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))
    reconcile(gateway.pk)
    return gateway


def test_it_lists_shows_and_diffs_revisions(org):
    two_revisions(org)
    viewer = org.client(Role.VIEWER)
    listing = viewer.get(BASE + "revisions/").json()["results"]
    assert [(r["number"], r["state"], r["current"]) for r in listing] == [
        (2, "valid", True), (1, "valid", False),
    ]  # fmt: skip
    assert listing[0]["createdBy"] == "system:reconcile"
    assert len(listing[0]["hash"]) == 64

    shown = viewer.get(BASE + "revisions/1/").json()
    assert "prefix: /api" in shown["resources"]
    assert shown["desiredState"]["gateway"] == "edge"

    diff = viewer.get(BASE + "revisions/2/diff/?against=1").json()
    removed = [
        line for line in diff["diff"].splitlines() if line.startswith("-") and "/api" in line
    ]
    added = [line for line in diff["diff"].splitlines() if line.startswith("+") and "/v2" in line]
    assert removed and added
    assert viewer.get(BASE + "revisions/2/diff/").json()["fromRevision"] == 1
    assert viewer.get(BASE + "revisions/9/").status_code == 404


def test_an_editor_rolls_back_to_a_valid_revision(org):
    gateway = two_revisions(org)
    first = ConfigRevision.objects.get(gateway=gateway, number=1)
    response = org.client(Role.EDITOR).post(BASE + "revisions/1/rollback/")
    assert response.status_code == 202
    assert response.json()["kind"] == "rollback" and response.json()["revision"] == 3
    assert "restores revision 1" in response.json()["message"]
    assert response.json()["createdBy"] == org.users[Role.EDITOR].username
    # A new revision, compiled again from revision 1's desired state: the same config here.
    restored = ConfigRevision.objects.get(gateway=gateway, current=True)
    assert (restored.number, restored.restored_from) == (3, 1)
    assert restored.content_hash == first.content_hash
    assert "restores revision 1's routing and policy" in restored.message
    shown = org.client(Role.VIEWER).get(BASE + "revisions/3/").json()
    assert (shown["restoredFrom"], shown["createdBy"]) == (1, restored.created_by)
    assert AuditEvent.objects.filter(action="rollback", object_name="edge").exists()
    # The rollback sticks while the desired state is unchanged…
    assert reconcile(gateway.pk).result == "unchanged"
    assert ConfigRevision.objects.get(gateway=gateway, current=True).number == 3
    timeline = org.client(Role.VIEWER).get(BASE + "operations/").json()["results"]
    assert [op["kind"] for op in timeline[:2]] == ["reconcile", "rollback"]
    assert {op["kind"] for op in timeline} == {"reconcile", "rollback"}
    # …and the next change supersedes it.
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v3"))
    assert reconcile(gateway.pk).revision.number == 4
    assert ConfigRevision.objects.get(gateway=gateway, current=True).number == 4


def test_a_rejected_revision_cannot_be_rolled_back_to(org):
    gateway = gateway_with_route(org.tenant)
    ConfigRevision.objects.create(
        gateway=gateway, number=1, content_hash="0" * 64, state="rejected", resources="{}",
        created_by="tests", message="bad regex",
    )  # fmt: skip
    response = org.client(Role.EDITOR).post(BASE + "revisions/1/rollback/")
    assert response.status_code == 409
    assert not GatewayOperation.objects.filter(kind="rollback").exists()


def test_a_viewer_cannot_roll_back(org):
    two_revisions(org)
    assert org.client(Role.VIEWER).post(BASE + "revisions/1/rollback/").status_code == 403


def test_a_private_key_is_never_in_a_revision_or_its_row(org):
    chain, key = pki.certificate(["app.example.com"])
    services.create_certificate(
        ACTOR, org.tenant, "app", {"certificatePem": chain, "privateKeyPem": key}
    )
    gateway = services.create_gateway(
        ACTOR, org.tenant, "edge",
        {"listeners": [{"name": "https", "protocol": "HTTPS", "port": 443,
                        "tls": {"certificateRefs": [{"name": "app"}]}}]},
    )  # fmt: skip
    outcome = reconcile(gateway.pk)
    assert outcome.revision.state == "valid", outcome.revision.message
    key_body = "".join(line for line in key.splitlines() if "-----" not in line)[:40]
    assert key_body in revisions.text_of(outcome.revision)  # the xDS server gets it, decrypted
    viewer = org.client(Role.VIEWER)
    for path in ("revisions/", "revisions/1/", "revisions/1/diff/?against=1", "operations/"):
        body = viewer.get(BASE + path).content.decode()
        assert key_body not in body, path
        assert "PRIVATE KEY" not in body, path
    assert "redacted hmac-sha256:" in viewer.get(BASE + "revisions/1/").json()["resources"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(body, '') FROM provisioning_configpart WHERE gateway_id = %s",
            [gateway.pk],
        )
        row = cursor.fetchone()[0]
    # The desired state is stored compressed: its document, as read back.
    row += json.dumps(ConfigRevision.objects.get(pk=outcome.revision.pk).desired_state)
    assert key_body not in row and "PRIVATE KEY" not in row


def test_only_the_newest_revisions_are_kept_and_always_the_current_one(org, settings, monkeypatch):
    settings.GANTRY_REVISIONS_KEEP = 3
    gateway = gateway_with_route(org.tenant)
    assert reconcile(gateway.pk).revision.number == 1
    route = Route.objects.get(gateway=gateway)
    monkeypatch.setattr(
        envoy, "validate", lambda resources, **_: envoy.Validation(False, "refused")
    )
    for prefix in ("/r2", "/r3", "/r4"):
        route = services.patch_route_spec(ACTOR, route, route_spec(prefix))
        assert reconcile(gateway.pk).result == "rejected"
    # Revision 1 is past the newest three, but it is what the gateway serves.
    assert list(gateway.revisions.values_list("number", "current")) == [
        (4, False), (3, False), (2, False), (1, True),
    ]  # fmt: skip
    monkeypatch.undo()
    services.patch_route_spec(ACTOR, route, route_spec("/r5"))
    assert reconcile(gateway.pk).revision.number == 5
    viewer = org.client(Role.VIEWER)
    listed = viewer.get(BASE + "revisions/").json()["results"]
    assert [r["number"] for r in listed] == [5, 4, 3]
    # The timeline keeps the entries of the pruned revisions, without the reference.
    timeline = viewer.get(BASE + "operations/").json()["results"]
    assert [op["revision"] for op in timeline] == [5, 4, 3, None, None]
    assert viewer.get(BASE + "revisions/1/").status_code == 404


def test_a_revision_number_must_be_ascii_digits(org):
    two_revisions(org)
    viewer = org.client(Role.VIEWER)
    for bad in ("²", "1.0", "-1", "1" * 20):
        response = viewer.get(BASE + "revisions/2/diff/", {"against": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["fields"][0]["path"] == "against"
    assert viewer.get(BASE + "revisions/²/").status_code == 404


def test_compiled_config_is_stored_compressed_and_encrypted_and_older_rows_still_read(org):
    gateway = gateway_with_route(org.tenant)
    revision = reconcile(gateway.pk).revision
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT body FROM provisioning_configpart WHERE gateway_id = %s", [gateway.pk]
        )
        stored = [body for (body,) in cursor.fetchall()]
    named = revisions.digests(revision.manifest)  # one per resource
    assert len(stored) == len(named | set(revision.manifest[revisions.DESIRED_ROUTES]))
    assert len(named) > 1
    assert all(body.startswith(COMPRESSED) and '"name"' not in body for body in stored)
    assert revisions.resources_of(revision)["listeners"]
    # A row written whole before parts (and before compression, plainly encrypted) reads as
    # it did.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE provisioning_configrevision SET resources = %s, manifest = NULL WHERE id = %s",
            [encrypt('{"listeners": [], "routes": [], "clusters": []}'), revision.pk],
        )
    assert revisions.resources_of(ConfigRevision.objects.get(pk=revision.pk))["listeners"] == []


def test_each_revision_stores_the_desired_state_it_was_compiled_from(org):
    gateway = gateway_with_route(org.tenant)
    route = Route.objects.get(gateway=gateway)
    steps = [
        lambda: None,
        lambda: services.create_route(ACTOR, gateway, "second", route_spec("/second")),
        lambda: services.patch_route_spec(ACTOR, route, route_spec("/changed")),
        lambda: services.delete_route(ACTOR, Route.objects.get(gateway=gateway, name="second")),
    ]
    for step in steps:
        step()
        revision = reconcile(gateway.pk).revision
        expected = json.loads(
            json.dumps(revisions.desired_snapshot(load_desired_state(gateway.pk)))
        )
        stored = ConfigRevision.objects.get(pk=revision.pk)
        assert revisions.desired_state_of(stored) == expected
        assert stored.desired_state["routes"] is None  # the routes are in parts
