"""A hostile tenant names a backend whose DNS answer is a cloud's metadata service, loopback or
the platform (or becomes one after the API checked the name: DNS rebinding).

On the local runtime nothing below Envoy checks where a connection goes, so the platform
resolves backends' names itself when it compiles, checks every address against the egress
policy and gives Envoy the addresses, never the name. Names are resolved here by a stand-in for
the system resolver (``socket.getaddrinfo``), so a test decides what a name answers.
"""

import json
import socket
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from provisioning import revisions
from provisioning.compile import compile_gateway
from provisioning.desired import egress_for, load_desired_state
from provisioning.reconcile import reconcile
from tenants.roles import Role
from tests.provisioning.harness import Upstream, running_envoy

BASE = "/api/v1/tenants/acme/"
GW = BASE + "gateways/edge/"


@pytest.fixture
def dns(monkeypatch):
    """name → the addresses it answers (an empty list: it does not resolve)."""
    answers: dict[str, list[str]] = {}
    system = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return system(host, port, *args, **kwargs)
        if not answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6,
                 "", (address, 0)) for address in answers[host]]  # fmt: skip

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def editor(org):
    client = org.client(Role.EDITOR)
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    response = client.post(BASE + "gateways/", {"name": "edge", "spec": {"listeners": listeners}},
                           format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    return client


def backend(editor, name: str, hostname: str, port: int, tls: bool = False) -> None:
    spec = {"endpoints": [{"fqdn": {"hostname": hostname, "port": port}}]}
    if tls:
        spec["tls"] = {}
    response = editor.post(BASE + "backends/", {"name": name, "spec": spec}, format="json")
    assert response.status_code == 202, response.content  # a name passes the API's check


def route(editor, name: str, target: str, path: str) -> None:
    spec = {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                       "backendRefs": [{"name": target}]}]}  # fmt: skip
    response = editor.post(GW + "routes/", {"name": name, "spec": spec}, format="json")
    assert response.status_code == 202, response.content


def resolved_refs(editor, name: str) -> dict:
    conditions = editor.get(GW + f"routes/{name}/").json()["status"]["conditions"]
    return {c["type"]: c for c in conditions}["ResolvedRefs"]


def clusters(state) -> dict[str, dict]:
    return {c["name"]: c for c in compile_gateway(state).as_dict()["clusters"]}


def test_names_resolving_to_metadata_or_the_platform_never_reach_envoy(org, editor, dns):
    dns["rebind.test"] = ["169.254.169.254"]
    dns["admin.test"] = ["10.1.2.3", "127.0.0.1"]  # one good answer does not save the other
    backend(editor, "meta", "rebind.test", 80)
    backend(editor, "admin", "admin.test", settings.GANTRY_PORT)
    route(editor, "meta", "meta", "/meta")
    route(editor, "admin", "admin", "/admin")
    gateway = org.tenant.gateways.get(name="edge")
    assert reconcile(gateway.pk).result == "created"
    text = revisions.text_of(gateway.revisions.get(current=True))
    for absent in ("rebind.test", "admin.test", "169.254.169.254", "10.1.2.3", "STRICT_DNS"):
        assert absent not in text, absent
    meta = resolved_refs(editor, "meta")
    assert (meta["status"], meta["reason"]) == ("False", "RefNotPermitted")
    assert "rebind.test (resolving to 169.254.169.254) is link-local" in meta["message"]
    admin = resolved_refs(editor, "admin")
    assert (
        "resolving to 127.0.0.1" in admin["message"]
        and "belongs to the platform" in (admin["message"])
    )


def test_an_allowed_name_is_served_at_the_checked_address_and_a_rebind_is_refused(org, editor, dns):
    app = Upstream("app")
    try:
        dns["app.test"] = ["127.0.0.1"]  # loopback: allowed by the embedded default
        backend(editor, "app", "app.test", app.port)
        route(editor, "app", "app", "/")
        gateway = org.tenant.gateways.get(name="edge")
        state = load_desired_state(gateway.pk)
        cluster = clusters(state)["acme/backend/app"]
        assert cluster["type"] == "STATIC"
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
            {"address": "127.0.0.1", "port_value": app.port}
        ]
        with running_envoy(state) as ports:
            answer = requests.get(f"http://127.0.0.1:{ports[80]}/", timeout=10)
            assert answer.status_code == 200 and answer.json()["backend"] == "app"
        # The name now answers the metadata address: the next compile refuses the backend.
        dns["app.test"] = ["169.254.169.254"]
        state = load_desired_state(gateway.pk)
        text = json.dumps(compile_gateway(state).as_dict())
        assert "169.254.169.254" not in text and "app.test" not in text
        with running_envoy(state) as ports:
            assert requests.get(f"http://127.0.0.1:{ports[80]}/", timeout=10).status_code == 500
    finally:
        app.close()


def test_a_name_that_does_not_resolve_gets_no_endpoints_and_tls_still_checks_the_name(
    org, editor, dns
):
    dns["gone.test"] = []
    dns["api.test"] = ["192.0.2.10", "192.0.2.9"]
    backend(editor, "gone", "gone.test", 80)
    backend(editor, "api", "api.test", 443, tls=True)
    route(editor, "gone", "gone", "/gone")
    route(editor, "api", "api", "/api")
    state = load_desired_state(org.tenant.gateways.get(name="edge").pk)
    found = clusters(state)
    assert found["acme/backend/gone"]["type"] == "STATIC"
    assert found["acme/backend/gone"]["load_assignment"]["endpoints"][0]["lb_endpoints"] == []
    api = found["acme/backend/api"]
    addresses = [e["endpoint"]["address"]["socket_address"]["address"]
                 for e in api["load_assignment"]["endpoints"][0]["lb_endpoints"]]  # fmt: skip
    assert addresses == ["192.0.2.9", "192.0.2.10"]  # a stable order: no revision per answer
    validation = api["transport_socket"]["typed_config"]["common_tls_context"]
    assert validation["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "api.test"}}
    ]
    with running_envoy(state) as ports:  # Envoy accepts it, and answers 503: no endpoint
        assert requests.get(f"http://127.0.0.1:{ports[80]}/gone", timeout=10).status_code == 503


@override_settings(GANTRY_EGRESS_ALLOW_LOOPBACK=True)
def test_kubernetes_gateways_leave_names_to_envoy_and_never_reach_their_pods_loopback():
    """On Kubernetes the NetworkPolicy checks where a connection goes; a pod's loopback is its
    own Envoy (its admin among it), refused even where loopback is allowed."""
    spec = {"endpoints": [{"fqdn": {"hostname": "app.test", "port": 80}}]}
    found = egress_for(SimpleNamespace(spec={"runtime": "kubernetes"}), {"app": spec})
    assert found["resolved"] is None
    assert "loopback" in found["egress"].check("127.0.0.1", 19000)
    local = egress_for(SimpleNamespace(spec={}), {})
    assert local["egress"].check("127.0.0.1", 19000) is None
