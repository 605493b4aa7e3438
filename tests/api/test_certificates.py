"""Certificates: the chain and key are checked on upload, the key is encrypted at rest and is
never returned, audited or echoed; the chain's facts show in the status."""

import json

import pytest
from django.db import connection

from gateways.models import Certificate
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api import pki

URL = "/api/v1/tenants/acme/certificates/"


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def create(client, name="example-cert", cert=None, key=None, **spec):
    if cert is None:
        cert, key = pki.certificate(["app.example.com", "*.example.com"])
    body = {"certificatePem": cert, **({"privateKeyPem": key} if key is not None else {}), **spec}
    return client.post(URL, {"name": name, "spec": body}, format="json")


def no_key_in(text: str) -> bool:
    return "PRIVATE KEY" not in text and "privateKeyPem" not in text


@pytest.mark.parametrize("kind", ["rsa", "ec", "ec384"])
def test_create_shows_the_chains_facts_and_never_the_key(editor, kind):
    cert, key = pki.certificate(["app.example.com", "*.example.com"], kind=kind)
    response = create(editor, cert=cert, key=key)
    assert response.status_code == 202, response.content
    assert no_key_in(response.content.decode())
    body = response.json()
    assert body["spec"] == {"certificatePem": cert}
    status = body["status"]
    assert status["dnsNames"] == ["app.example.com", "*.example.com"]
    assert status["subject"] == status["issuer"] == "CN=app.example.com"
    assert status["fingerprintSha256"] == pki.fingerprint(cert)
    assert status["notBefore"] < status["notAfter"]
    assert status["hasPrivateKey"] is True
    assert status["conditions"][0]["type"] == "Accepted"
    assert status["conditions"][0]["status"] == "True"
    assert response["ETag"] == f'"{body["resourceVersion"]}"'
    for read in (editor.get(URL + "example-cert/"), editor.get(URL)):
        assert read.status_code == 200
        assert no_key_in(read.content.decode())


def test_the_key_is_encrypted_at_rest(editor):
    cert, key = pki.certificate(kind="rsa")
    create(editor, cert=cert, key=key)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT private_key, spec::text, status::text FROM gateways_certificate "
            "WHERE name = %s",
            ["example-cert"],
        )
        raw_key, raw_spec, raw_status = cursor.fetchone()
    body = "".join(key.strip().splitlines()[1:-1])  # the base64 body of the PEM
    assert "PRIVATE KEY" not in raw_key and body[:40] not in raw_key
    assert raw_key.startswith("gAAAAA")  # a Fernet token
    assert no_key_in(raw_spec) and no_key_in(raw_status)
    assert Certificate.objects.get(name="example-cert").private_key == key  # decrypts


def test_the_key_is_never_written_to_the_audit_log(editor):
    cert, key = pki.certificate(kind="ec")
    create(editor, cert=cert, key=key)
    renewed, _ = pki.certificate(["renewed.example.com"], kind="ec")
    editor.patch(
        URL + "example-cert/", {"spec": {"certificatePem": renewed, "privateKeyPem": key}},
        format="json",
    )  # fmt: skip
    editor.delete(URL + "example-cert/")
    events = AuditEvent.objects.filter(object_type="certificate").order_by("created_at", "id")
    assert [event.action for event in events] == ["create", "update", "delete"]
    for event in events:
        assert no_key_in(json.dumps([event.before, event.after]))
    assert events[1].after["fingerprintSha256"] == pki.fingerprint(renewed)


def test_a_renewed_chain_alone_must_match_the_stored_key(editor):
    cert, key = pki.certificate(kind="ec")
    version = create(editor, cert=cert, key=key).json()["resourceVersion"]
    renewed, _ = pki.certificate(["renewed.example.com"], kind="ec")  # same key, new cert
    response = editor.patch(
        URL + "example-cert/", {"spec": {"certificatePem": renewed}}, format="json",
        HTTP_IF_MATCH=f'"{version}"',
    )  # fmt: skip
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"]["dnsNames"] == ["renewed.example.com"]
    assert body["status"]["hasPrivateKey"] is True
    assert body["generation"] == 2
    other, _ = pki.certificate(["other.example.com"], kind="ec", label="other")
    response = editor.patch(
        URL + "example-cert/", {"spec": {"certificatePem": other}}, format="json"
    )
    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]
    assert field["path"] == "spec.certificatePem"
    assert "stored private key" in field["message"]
    assert Certificate.objects.get(name="example-cert").spec["certificatePem"] == renewed


def test_a_patch_may_replace_chain_and_key_together(editor):
    create(editor)
    cert, key = pki.certificate(["new.example.com"], kind="rsa")
    response = editor.patch(
        URL + "example-cert/", {"spec": {"certificatePem": cert, "privateKeyPem": key}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202
    assert response.json()["status"]["fingerprintSha256"] == pki.fingerprint(cert)
    assert Certificate.objects.get(name="example-cert").private_key == key


def test_put_without_a_key_keeps_it_and_null_removes_it(editor):
    cert, key = pki.certificate(kind="ec")
    create(editor, cert=cert, key=key)
    response = editor.put(URL + "example-cert/", {"spec": {"certificatePem": cert}}, format="json")
    assert response.status_code == 200
    assert response.json()["generation"] == 1  # nothing changed
    assert Certificate.objects.get(name="example-cert").private_key == key
    response = editor.patch(URL + "example-cert/", {"spec": {"privateKeyPem": None}}, format="json")
    assert response.status_code == 202
    assert response.json()["status"]["hasPrivateKey"] is False
    assert response.json()["generation"] == 2
    assert Certificate.objects.get(name="example-cert").private_key is None


def test_a_ca_bundle_needs_no_key(editor):
    cert, _ = pki.certificate([], kind="rsa", label="ca")
    response = create(editor, "internal-ca", cert=cert)
    assert response.status_code == 202, response.content
    assert response.json()["status"]["hasPrivateKey"] is False
    assert response.json()["status"]["dnsNames"] == []


def test_a_stale_version_is_409_and_changes_nothing(editor):
    version = create(editor).json()["resourceVersion"]
    cert, key = pki.certificate(["new.example.com"], kind="ec", label="new")
    editor.patch(
        URL + "example-cert/", {"spec": {"certificatePem": cert, "privateKeyPem": key}},
        format="json",
    )  # fmt: skip
    stale, _ = pki.certificate(["stale.example.com"], kind="ec", label="new")
    response = editor.patch(
        URL + "example-cert/", {"spec": {"certificatePem": stale}, "resourceVersion": version},
        format="json",
    )  # fmt: skip
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert editor.delete(URL + "example-cert/", HTTP_IF_MATCH=f'"{version}"').status_code == 409
    assert Certificate.objects.get(name="example-cert").spec["certificatePem"] == cert


def _spec(case: str) -> dict:
    """Each bad certificate spec, made when the test runs (keys are costly to make)."""
    cert, key = pki.certificate(kind="ec")
    if case == "missing chain":
        return {"privateKeyPem": key}
    if case == "garbage chain":
        return {
            "certificatePem": "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----"
        }
    if case == "not PEM":
        return {"certificatePem": "hello", "privateKeyPem": key}
    if case == "garbage key":
        return {"certificatePem": cert, "privateKeyPem": "-----BEGIN PRIVATE KEY-----\nx\n"}
    if case == "mismatched key":
        return {"certificatePem": cert, "privateKeyPem": pki.key_pem(pki.private_key("ec", "b"))}
    if case == "encrypted key":
        return {"certificatePem": cert, "privateKeyPem": pki.key_pem(pki.private_key(), b"pw")}
    if case in ("expired", "not yet valid", "rsa1024", "secp256k1", "ed25519"):
        options = {
            "expired": {"start_days": -30, "days": 10},
            "not yet valid": {"start_days": 2},
        }.get(case, {"kind": case})
        cert, key = pki.certificate(**options)
        return {"certificatePem": cert, "privateKeyPem": key}
    if case == "unknown field":
        return {"certificatePem": cert, "privateKeyPem": key, "chain": cert}
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "path", "says"),
    [
        ("missing chain", "spec.certificatePem", "required"),
        ("garbage chain", "spec.certificatePem", "PEM certificate chain"),
        ("not PEM", "spec.certificatePem", "PEM certificate chain"),
        ("garbage key", "spec.privateKeyPem", "PEM private key"),
        ("mismatched key", "spec.privateKeyPem", "does not match"),
        ("encrypted key", "spec.privateKeyPem", "encrypted"),
        ("expired", "spec.certificatePem", "expired on"),
        ("not yet valid", "spec.certificatePem", "not valid before"),
        ("rsa1024", "spec.privateKeyPem", "1024 bits"),
        ("secp256k1", "spec.privateKeyPem", "secp256k1"),
        ("ed25519", "spec.privateKeyPem", "RSA or ECDSA"),
        ("unknown field", "spec.chain", "unknown field"),
    ],
)
def test_bad_input_names_the_json_path_and_changes_nothing(editor, case, path, says):
    good, good_key = pki.certificate(kind="ec")
    create(editor, cert=good, key=good_key)
    before = (Certificate.objects.get(name="example-cert").spec, AuditEvent.objects.count())
    spec = _spec(case)
    patch = {"certificatePem": None} if case == "missing chain" else spec
    for response in (
        editor.post(URL, {"name": "other", "spec": spec}, format="json"),
        editor.patch(URL + "example-cert/", {"spec": patch}, format="json"),
    ):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        fields = {field["path"]: field["message"] for field in error["fields"]}
        assert path in fields and says in fields[path], fields
        assert "PRIVATE KEY" not in response.content.decode()  # the key is never echoed
    assert not Certificate.objects.filter(name="other").exists()
    assert (Certificate.objects.get(name="example-cert").spec, AuditEvent.objects.count()) == before
    assert Certificate.objects.get(name="example-cert").private_key == good_key


def test_spec_must_be_an_object(editor):
    response = editor.post(URL, {"name": "x", "spec": ["pem"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "spec"


def test_a_duplicate_name_is_409(editor):
    create(editor)
    assert create(editor).status_code == 409


def test_another_tenants_certificate_is_404(org, other_org):
    create(org.client(Role.EDITOR))
    client = other_org.client(Role.OWNER)
    assert client.get("/api/v1/tenants/globex/certificates/example-cert/").status_code == 404
    assert client.get(URL + "example-cert/").status_code == 404
    assert client.get("/api/v1/tenants/globex/certificates/").json()["count"] == 0


def test_viewers_read_but_do_not_write(org):
    create(org.client(Role.EDITOR))
    viewer = org.client(Role.VIEWER)
    assert viewer.get(URL + "example-cert/").status_code == 200
    assert create(viewer, "mine").status_code == 403
    assert viewer.delete(URL + "example-cert/").status_code == 403
    assert Certificate.objects.count() == 1
