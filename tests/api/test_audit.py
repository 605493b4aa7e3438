"""The audit log: every write, with who, before/after (secrets redacted), request id and
client address; admins read it, filtered by object and actor."""

from tenants.audit import REDACTED, redact
from tenants.models import AuditEvent
from tenants.roles import Role

EVENTS = "/api/v1/tenants/acme/audit-events/"


def test_a_write_is_audited_with_before_after_request_and_address(org):
    editor = org.client(Role.EDITOR)
    editor.post("/api/v1/tenants/acme/gateways/", {"name": "edge"}, format="json")
    editor.patch(
        "/api/v1/tenants/acme/gateways/edge/",
        {"spec": {"replicas": 2}},
        format="json",
        HTTP_X_REQUEST_ID="req-42",
        REMOTE_ADDR="203.0.113.9",
    )
    events = org.client(Role.ADMIN).get(EVENTS, {"objectType": "gateway"}).json()["results"]
    assert [e["action"] for e in events] == ["update", "create"]
    update = events[0]
    assert update["actor"] == org.users[Role.EDITOR].username
    assert update["tokenPrefix"].startswith("gty_")
    assert update["objectName"] == "edge"
    assert update["before"]["spec"]["replicas"] == 1
    assert update["after"]["spec"]["replicas"] == 2
    assert update["requestId"] == "req-42"
    assert update["clientAddress"] == "203.0.113.9"


def test_token_creation_is_audited_without_the_secret(org):
    created = (
        org.client(Role.VIEWER)
        .post(
            "/api/v1/tenants/acme/tokens/",
            {"name": "ci", "expiresAt": "2099-01-01T00:00:00Z"},
            format="json",
        )
        .json()
    )
    event = AuditEvent.objects.get(object_type="token", object_name=created["prefix"])
    assert created["token"] not in str(event.after)
    assert event.actor_name == org.users[Role.VIEWER].username


def test_filters_by_object_and_actor(org):
    admin = org.client(Role.ADMIN)
    org.client(Role.EDITOR).post("/api/v1/tenants/acme/gateways/", {"name": "one"}, format="json")
    admin.post("/api/v1/tenants/acme/gateways/", {"name": "two"}, format="json")
    by_actor = admin.get(EVENTS, {"actor": org.users[Role.ADMIN].username}).json()["results"]
    assert [e["objectName"] for e in by_actor] == ["two"]
    by_object = admin.get(EVENTS, {"objectType": "gateway", "objectName": "one"}).json()
    assert by_object["count"] == 1
    oldest_first = admin.get(EVENTS, {"ordering": "time"}).json()["results"]
    assert oldest_first[0]["objectType"] == "tenant"


def test_another_tenants_events_are_invisible(org, other_org):
    org.client(Role.EDITOR).post("/api/v1/tenants/acme/gateways/", {"name": "gw"}, format="json")
    events = other_org.client(Role.OWNER).get("/api/v1/tenants/globex/audit-events/").json()
    assert all(e["objectName"] != "gw" for e in events["results"])
    acme_event = AuditEvent.objects.filter(tenant=org.tenant).first()
    path = f"/api/v1/tenants/globex/audit-events/{acme_event.pk}/"
    assert other_org.client(Role.OWNER).get(path).status_code == 404


def test_redaction_covers_nested_secrets():
    value = {
        "spec": {
            "password": "hunter2",
            "users": [{"name": "bob", "apiKey": "k"}],
            "privateKey": "-----BEGIN",
            "tls": {"certificateRefs": [{"name": "c"}]},
        }
    }
    assert redact(value) == {
        "spec": {
            "password": REDACTED,
            "users": [{"name": "bob", "apiKey": REDACTED}],
            "privateKey": REDACTED,
            "tls": {"certificateRefs": [{"name": "c"}]},
        }
    }
