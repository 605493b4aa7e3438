"""Consumers and their credentials: API keys generated and shown once, basic-auth passwords
kept only as the hash Envoy needs; secrets encrypted at rest, never listed, never audited;
another tenant's consumer is 404; credential changes make the tenant's gateways reconcile."""

import base64
import hashlib

import pytest
from django.db import connection

from gateways.models import Credential
from tenants.models import AuditEvent
from tenants.roles import Role

URL = "/api/v1/tenants/acme/consumers/"
CREDS = URL + "alice/credentials/"


@pytest.fixture
def editor(org):
    client = org.client(Role.EDITOR)
    response = client.post(URL, {"name": "alice", "spec": {"description": "mobile app"}},
                           format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    return client


def test_a_consumer_has_spec_and_status(editor):
    body = editor.get(URL + "alice/").json()
    assert body["spec"] == {"description": "mobile app"}
    assert body["status"]["conditions"][0]["type"] == "Accepted"
    patched = editor.patch(URL + "alice/", {"spec": {"description": "web"}}, format="json")
    assert patched.json()["spec"] == {"description": "web"}
    assert patched.json()["generation"] == 2
    duplicate = editor.post(URL, {"name": "alice", "spec": {}}, format="json")
    assert duplicate.status_code == 409


def test_an_api_key_is_shown_once_and_never_again(editor):
    response = editor.post(CREDS, {"type": "api-key"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert body["type"] == "api-key"
    assert key.startswith(body["id"] + "_") and len(key) > 40
    listed = editor.get(CREDS)
    one = editor.get(CREDS + body["id"] + "/")
    assert listed.json()["results"] == [
        {"id": body["id"], "type": "api-key", "username": None, "createdAt": body["createdAt"]}
    ]
    for read in (listed, one, editor.get(URL + "alice/")):
        assert read.status_code == 200
        assert key not in read.content.decode()
        # nor its secret part (after ``gak_<id>_``; the secret may itself contain ``_``)
        assert key.split("_", 2)[2] not in read.content.decode()
    second = editor.post(CREDS, {"type": "api-key"}, format="json").json()
    assert second["key"] != key


def test_secrets_are_encrypted_at_rest_and_never_audited(editor):
    key = editor.post(CREDS, {"type": "api-key"}, format="json").json()["key"]
    response = editor.post(CREDS, {"type": "basic-auth", "password": "correct horse"},
                           format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    assert "password" not in response.json() and response.json()["key"] is None
    assert response.json()["username"] == "alice"
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"correct horse").digest()).decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM gateways_credential ORDER BY id")
        raw = [row[0] for row in cursor.fetchall()]
    assert all(value.startswith("gAAAAA") for value in raw)  # Fernet tokens
    assert not any(key in value or sha in value or "correct horse" in value for value in raw)
    stored = {c.type: c.secret for c in Credential.objects.all()}
    assert stored == {"api-key": key, "basic-auth": sha}  # decrypts; no password kept
    events = AuditEvent.objects.filter(object_type="credential")
    assert events.count() == 2
    text = str([(e.before, e.after) for e in events])
    assert key not in text and "correct horse" not in text and sha not in text


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"type": "jwt"}, "type"),
        ({}, "type"),
        ({"type": "api-key", "password": "x" * 10}, "password"),
        ({"type": "api-key", "keyy": "x"}, "keyy"),
        ({"type": "basic-auth"}, "password"),
        ({"type": "basic-auth", "password": "short"}, "password"),
        ({"type": "basic-auth", "password": "bad\npassword"}, "password"),
        ({"type": "basic-auth", "username": "bob", "password": "long enough"}, "username"),
    ],
)
def test_bad_credentials_name_the_field_and_change_nothing(editor, body, path):
    response = editor.post(CREDS, body, format="json")
    assert response.status_code == 400, response.content
    assert [f["path"] for f in response.json()["error"]["fields"]] == [path]
    assert not Credential.objects.exists()


def test_one_basic_auth_password_per_consumer_and_deleting_frees_it(editor):
    body = {"type": "basic-auth", "password": "first password"}
    first = editor.post(CREDS, body, format="json").json()
    again = editor.post(CREDS, body, format="json")
    assert again.status_code == 409
    assert editor.delete(CREDS + first["id"] + "/").status_code == 204
    assert editor.post(CREDS, body, format="json").status_code == 201


def test_bad_consumer_specs_name_the_field(editor):
    response = editor.post(URL, {"name": "bob", "spec": {"descripton": "typo"}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "spec.descripton"
    response = editor.post(URL, {"name": "Bob", "spec": {}}, format="json")
    assert response.json()["error"]["fields"][0]["path"] == "name"


def test_deleting_a_consumer_deletes_its_credentials(editor):
    editor.post(CREDS, {"type": "api-key"}, format="json")
    assert editor.delete(URL + "alice/").status_code == 204
    assert not Credential.objects.exists()
    assert editor.get(CREDS).status_code == 404


def test_another_tenants_consumers_are_404(editor, other_org):
    created = editor.post(CREDS, {"type": "api-key"}, format="json").json()
    stranger = other_org.client(Role.OWNER)
    for path in (URL + "alice/", CREDS, CREDS + created["id"] + "/"):
        assert stranger.get(path).status_code == 404
    assert stranger.get("/api/v1/tenants/globex/consumers/alice/").status_code == 404
    same_id = f"/api/v1/tenants/globex/consumers/alice/credentials/{created['id']}/"
    assert stranger.delete(same_id).status_code == 404
    assert Credential.objects.count() == 1


def test_viewers_read_and_cannot_create_credentials(editor, org):
    viewer = org.client(Role.VIEWER)
    assert viewer.get(CREDS).status_code == 200
    assert viewer.post(CREDS, {"type": "api-key"}, format="json").status_code == 403
    assert not Credential.objects.exists()


def test_credential_changes_reconcile_the_tenants_gateways(editor, org, monkeypatch):
    from gateways.services import consumers

    sent = []
    monkeypatch.setattr(consumers, "enqueue_reconcile_tenant", sent.append)
    created = editor.post(CREDS, {"type": "api-key"}, format="json").json()
    editor.delete(CREDS + created["id"] + "/")
    assert sent == [org.tenant.pk, org.tenant.pk]
