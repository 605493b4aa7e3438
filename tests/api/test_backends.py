"""Backends: IP or DNS endpoints (never both), app protocol, upstream TLS; the spec/status shape
of every resource; CA references resolved in the status."""

import pytest

from gateways.models import Backend
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api import pki

URL = "/api/v1/tenants/acme/backends/"
IP = {"ip": {"address": "10.0.0.1", "port": 8080}}
FQDN = {"fqdn": {"hostname": "api.internal", "port": 80}}


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def create(client, name="api", **spec):
    spec.setdefault("endpoints", [IP])
    return client.post(URL, {"name": name, "spec": spec}, format="json")


def conditions(body: dict) -> dict:
    return {c["type"]: c for c in body["status"]["conditions"]}


def test_create_fills_defaults_and_reports_status(editor):
    response = create(editor)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spec"] == {"endpoints": [IP], "appProtocol": "HTTP/1.1"}
    assert conditions(body)["Accepted"]["status"] == "True"
    assert conditions(body)["ResolvedRefs"]["status"] == "True"
    assert (body["generation"], body["status"]["observedGeneration"]) == (1, 1)
    assert response["ETag"] == f'"{body["resourceVersion"]}"'
    event = AuditEvent.objects.get(object_type="backend", action="create")
    assert event.after["spec"] == body["spec"]


def test_dns_backends_with_tls_and_ipv6_addresses(editor):
    spec = {
        "endpoints": [FQDN, {"fqdn": {"hostname": "api2.internal", "port": 80}}],
        "appProtocol": "gRPC",
        "tls": {"sni": "api.internal"},
    }
    response = create(editor, "grpc", **spec)
    assert response.status_code == 202, response.content
    assert response.json()["spec"] == spec
    response = create(editor, "v6", endpoints=[{"ip": {"address": "2001:DB8:0::1", "port": 443}}])
    assert response.json()["spec"]["endpoints"][0]["ip"]["address"] == "2001:db8::1"


def test_ca_references_resolve_when_the_certificate_exists(editor):
    tls = {"sni": "api.internal", "caCertificateRefs": [{"name": "internal-ca"}]}
    body = create(editor, endpoints=[FQDN], tls=tls).json()
    resolved = conditions(body)["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "InvalidCACertificateRef")
    assert "spec.tls.caCertificateRefs[0]" in resolved["message"]
    ca, _ = pki.certificate([], kind="ec", label="ca")
    certificate = {"name": "internal-ca", "spec": {"certificatePem": ca}}
    response = editor.post("/api/v1/tenants/acme/certificates/", certificate, format="json")
    assert response.status_code == 202
    after = editor.get(URL + "api/").json()
    assert conditions(after)["ResolvedRefs"]["status"] == "True"
    assert after["generation"] == 1  # a status change is not a spec change
    assert int(after["resourceVersion"]) == int(body["resourceVersion"]) + 1
    editor.delete("/api/v1/tenants/acme/certificates/internal-ca/")
    assert conditions(editor.get(URL + "api/").json())["ResolvedRefs"]["status"] == "False"


def test_put_replaces_the_whole_spec(editor):
    create(editor, endpoints=[FQDN], appProtocol="h2c", tls={"sni": "api.internal"})
    response = editor.put(URL + "api/", {"spec": {"endpoints": [IP]}}, format="json")
    assert response.status_code == 202
    assert response.json()["spec"] == {"endpoints": [IP], "appProtocol": "HTTP/1.1"}
    assert response.json()["generation"] == 2


def test_patch_merges_into_the_spec_and_null_removes(editor):
    create(editor, tls={"sni": "api.internal"})
    response = editor.patch(URL + "api/", {"spec": {"appProtocol": "h2c"}}, format="json")
    spec = response.json()["spec"]
    assert (spec["appProtocol"], spec["endpoints"], spec["tls"]) == (
        "h2c",
        [IP],
        {"sni": "api.internal"},
    )
    response = editor.patch(URL + "api/", {"spec": {"tls": None}}, format="json")
    assert "tls" not in response.json()["spec"]
    assert response.json()["generation"] == 3
    same = editor.patch(URL + "api/", {"spec": {"appProtocol": "h2c"}}, format="json").json()
    assert same["generation"] == 3


def test_a_stale_version_is_409_and_changes_nothing(editor):
    version = create(editor).json()["resourceVersion"]
    editor.patch(URL + "api/", {"spec": {"appProtocol": "h2c"}}, format="json")
    response = editor.put(
        URL + "api/", {"spec": {"endpoints": [FQDN]}}, format="json", HTTP_IF_MATCH=f'"{version}"'
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert editor.delete(URL + "api/", HTTP_IF_MATCH=f'"{version}"').status_code == 409
    assert Backend.objects.get(name="api").spec["endpoints"] == [IP]


def ip(address="10.0.0.1", port=8080):
    return {"ip": {"address": address, "port": port}}


def fqdn(hostname="api.internal", port=80):
    return {"fqdn": {"hostname": hostname, "port": port}}


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"endpoints": []}, "spec.endpoints"),
        ({"appProtocol": "h2c"}, "spec.endpoints"),  # endpoints are required
        ({"endpoints": [ip(port=p) for p in range(1, 66)]}, "spec.endpoints"),
        ({"endpoints": [{}]}, "spec.endpoints[0]"),
        ({"endpoints": [{**ip(), **fqdn()}]}, "spec.endpoints[0]"),
        ({"endpoints": [ip("10.0.0.256")]}, "spec.endpoints[0].ip.address"),
        ({"endpoints": [ip("api.internal")]}, "spec.endpoints[0].ip.address"),
        ({"endpoints": [ip("fe80::1%eth0")]}, "spec.endpoints[0].ip.address"),
        ({"endpoints": [ip("0.0.0.0")]}, "spec.endpoints[0].ip.address"),
        ({"endpoints": [ip("224.0.0.1")]}, "spec.endpoints[0].ip.address"),
        ({"endpoints": [ip(port=0)]}, "spec.endpoints[0].ip.port"),
        ({"endpoints": [ip(port=65536)]}, "spec.endpoints[0].ip.port"),
        ({"endpoints": [ip(), {"ip": {"address": "10.0.0.2"}}]}, "spec.endpoints[1].ip.port"),
        ({"endpoints": [fqdn("bad_host")]}, "spec.endpoints[0].fqdn.hostname"),
        ({"endpoints": [fqdn("API.internal")]}, "spec.endpoints[0].fqdn.hostname"),
        ({"endpoints": [fqdn("*.internal")]}, "spec.endpoints[0].fqdn.hostname"),
        ({"endpoints": [fqdn("10.0.0.1")]}, "spec.endpoints[0].fqdn.hostname"),
        ({"endpoints": [ip(), fqdn()]}, "spec.endpoints[1]"),
        ({"endpoints": [fqdn(), fqdn("b.internal"), ip()]}, "spec.endpoints[2]"),
        ({"endpoints": [ip(), ip()]}, "spec.endpoints[1].ip"),
        ({"endpoints": [{"ip": {**IP["ip"], "weight": 2}}]}, "spec.endpoints[0].ip.weight"),
        ({"endpoints": [ip()], "appProtocol": "HTTP/3"}, "spec.appProtocol"),
        ({"endpoints": [ip()], "tls": {"sni": "*.internal"}}, "spec.tls.sni"),
        ({"endpoints": [ip()], "tls": {"caCertificateRefs": [{"name": "Bad"}]}},
         "spec.tls.caCertificateRefs[0].name"),
        ({"endpoints": [ip()], "tls": {"caCertificateRefs": [{"name": "a"}, {"name": "a"}]}},
         "spec.tls.caCertificateRefs[1].name"),
        ({"endpoints": [ip()], "tls": {"insecureSkipVerify": True}},
         "spec.tls.insecureSkipVerify"),
    ],
)  # fmt: skip
def test_bad_input_names_the_json_path_and_changes_nothing(editor, spec, path):
    create(editor)
    before = (Backend.objects.get(name="api").spec, AuditEvent.objects.count())
    put = {"endpoints": None, **spec}  # merge patch: drop the stored endpoints if spec has none
    for response in (
        editor.post(URL, {"name": "other", "spec": spec}, format="json"),
        editor.patch(URL + "api/", {"spec": put}, format="json"),
        editor.put(URL + "api/", {"spec": spec}, format="json"),
    ):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert path in [field["path"] for field in error["fields"]], error
        assert path in error["message"]
    assert not Backend.objects.filter(name="other").exists()
    assert (Backend.objects.get(name="api").spec, AuditEvent.objects.count()) == before


def test_lists_filter_by_app_protocol(editor):
    create(editor, "a", appProtocol="h2c")
    create(editor, "b")
    names = [b["name"] for b in editor.get(URL, {"appProtocol": "h2c"}).json()["results"]]
    assert names == ["a"]
    assert editor.get(URL, {"appProtocol": "spdy"}).status_code == 400


def test_another_tenants_backend_is_404(org, other_org):
    create(org.client(Role.EDITOR))
    client = other_org.client(Role.OWNER)
    assert client.get("/api/v1/tenants/globex/backends/api/").status_code == 404
    assert client.patch(URL + "api/", {"spec": {}}, format="json").status_code == 404
    assert client.get("/api/v1/tenants/globex/backends/").json()["count"] == 0
