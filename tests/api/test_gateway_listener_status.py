"""A listener's certificates that are missing or cannot serve TLS are reported on the gateway."""

import pytest

from tenants.roles import Role
from tests.provisioning.certs import self_signed

BASE = "/api/v1/tenants/acme/"
HTTPS = {"name": "https", "protocol": "HTTPS", "port": 443,
         "tls": {"certificateRefs": [{"name": "site"}]}}  # fmt: skip


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def resolved(client) -> dict:
    gateway = client.get(BASE + "gateways/edge/").json()
    listeners = {entry["name"]: entry for entry in gateway["status"]["listeners"]}
    return {name: entry["conditions"][0] for name, entry in listeners.items()}


def test_a_missing_certificate_is_reported_until_it_is_uploaded(editor):
    spec = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}, HTTPS]}
    response = editor.post(BASE + "gateways/", {"name": "edge", "spec": spec}, format="json")
    assert response.status_code == 202
    conditions = resolved(editor)
    assert conditions["http"]["status"] == "True"
    assert conditions["https"]["status"] == "False"
    assert conditions["https"]["reason"] == "InvalidCertificateRef"
    assert "'site' does not exist" in conditions["https"]["message"]

    chain, key = self_signed(["shop.example.com"])
    body = {"name": "site", "spec": {"certificatePem": chain, "privateKeyPem": key}}
    assert editor.post(BASE + "certificates/", body, format="json").status_code == 202
    assert resolved(editor)["https"]["status"] == "True"

    assert editor.delete(BASE + "certificates/site/").status_code == 204
    assert resolved(editor)["https"]["status"] == "False"


def test_a_certificate_without_a_key_cannot_serve_tls(editor):
    chain, _ = self_signed(["ca.example"])
    body = {"name": "site", "spec": {"certificatePem": chain}}
    assert editor.post(BASE + "certificates/", body, format="json").status_code == 202
    editor.post(BASE + "gateways/", {"name": "edge", "spec": {"listeners": [HTTPS]}}, format="json")
    condition = resolved(editor)["https"]
    assert condition["status"] == "False"
    assert "no private key" in condition["message"]
