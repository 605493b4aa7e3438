"""Backends named by DNS, followed at their TTL: Envoy resolving them itself (Kubernetes) through
the operator's DNS servers, and the platform resolving them for local gateways (the pinned
addresses the egress policy checks), re-resolved when the answer expires. A DNS server the
tests own answers; real Envoy serves the traffic."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.test import override_settings

from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.ir.build import DesiredState
from provisioning.models import ResolvedName
from provisioning.pinned_dns import refresh_expired
from provisioning.reconcile import reconcile
from tenants.roles import Role
from tests.provisioning.dns_server import DNSServer
from tests.provisioning.harness import free_port, running_envoy

BASE = "/api/v1/tenants/acme/"
NAME = "api.backends.test"


class Answering:
    """An HTTP server on one loopback address that answers with that address."""

    def __init__(self, address: str, port: int):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the standard library's name
                body = json.dumps({"address": address}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dns_server():
    server = DNSServer(ttl=1)
    yield server
    server.close()


@pytest.fixture
def two_addresses():
    """The same port answered on 127.0.0.2 and 127.0.0.3 (what a DNS change moves between)."""
    port = free_port()
    servers = [Answering("127.0.0.2", port), Answering("127.0.0.3", port)]
    yield port
    for server in servers:
        server.close()


def answered_by(port: int, expected: str, within: float = 15) -> float:
    """Seconds until requests through the gateway answer from ``expected``."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < within:
        try:
            response = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            last = response.status_code, response.text[:80]
            if response.status_code == 200 and response.json()["address"] == expected:
                return time.monotonic() - started
        except requests.RequestException as error:
            last = repr(error)
        time.sleep(0.1)
    raise AssertionError(f"not answered by {expected} within {within}s; last: {last}")


def state_for(backend: dict, resolvers) -> DesiredState:
    return DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "all", "spec": {"rules": [{"backendRefs": [{"name": "api"}]}]}}],
        backends={"api": backend}, dns_resolvers=resolvers,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("resolution", ["Strict", "Logical"])
def test_envoy_follows_a_dns_change_within_the_ttl(dns_server, two_addresses, resolution):
    """Kubernetes gateways: Envoy resolves the name itself (STRICT_DNS or LOGICAL_DNS) through
    the operator's DNS servers, again when the answer's 1 s TTL runs out."""
    port = two_addresses
    dns_server.records[NAME] = ["127.0.0.2"]
    backend = {
        "endpoints": [{"fqdn": {"hostname": NAME, "port": port}}],
        "dns": {"resolution": resolution, "respectTtl": True, "refreshRate": "60s"},
    }
    with running_envoy(state_for(backend, (("127.0.0.1", dns_server.port),))) as ports:
        answered_by(ports[80], "127.0.0.2")
        dns_server.records[NAME] = ["127.0.0.3"]
        # Within the TTL (1 s) and a refresh, not the 60 s refreshRate.
        assert answered_by(ports[80], "127.0.0.3", within=10) < 10
    assert (NAME, "A") in dns_server.queries


@pytest.fixture
def local_gateway(org, dns_server, two_addresses):
    client = org.client(Role.EDITOR)
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    assert client.post(BASE + "gateways/", {"name": "edge", "spec": {"listeners": listeners}},
                       format="json").status_code == 202  # fmt: skip
    backend = {"endpoints": [{"fqdn": {"hostname": NAME, "port": two_addresses}}],
               "dns": {"respectTtl": True, "refreshRate": "1h"}}  # fmt: skip
    assert client.post(BASE + "backends/", {"name": "api", "spec": backend},
                       format="json").status_code == 202  # fmt: skip
    route = {"rules": [{"backendRefs": [{"name": "api"}]}]}
    assert client.post(BASE + "gateways/edge/routes/", {"name": "all", "spec": route},
                       format="json").status_code == 202  # fmt: skip
    with override_settings(GANTRY_GATEWAY_DNS_RESOLVERS=[dns_server.address],
                           GANTRY_DNS_MIN_TTL_SECONDS=1):  # fmt: skip
        yield org.tenant.gateways.get(name="edge")


def served_addresses(gateway) -> list[str]:
    clusters = compile_gateway(load_desired_state(gateway.pk)).as_dict()["clusters"]
    api = next(c for c in clusters if c["name"] == "acme/backend/api")
    assert api["type"] == "STATIC"  # the platform's addresses, never the name
    endpoints = api["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return [e["endpoint"]["address"]["socket_address"]["address"] for e in endpoints]


def test_the_platform_resolves_again_when_the_ttl_runs_out_and_reconciles(
    local_gateway, dns_server, monkeypatch
):
    """Local gateways: the platform's answer is kept for its TTL; the periodic refresh resolves
    expired names again and reconciles the gateways whose answer changed (and only then)."""
    sent: list[int] = []
    monkeypatch.setattr("provisioning.tasks.send_reconcile", lambda pk, **kw: sent.append(pk))
    dns_server.ttl = 2
    dns_server.records[NAME] = ["127.0.0.2"]
    reconcile(local_gateway.pk)
    assert served_addresses(local_gateway) == ["127.0.0.2"]
    row = ResolvedName.objects.get(name=NAME)
    assert row.addresses == ["127.0.0.2"]
    assert 1.5 <= (row.expires_at - row.resolved_at).total_seconds() <= 2.5  # the TTL

    dns_server.records[NAME] = ["127.0.0.3"]
    assert refresh_expired() == []  # not expired yet: not even asked
    time.sleep(2.2)
    assert refresh_expired() == [local_gateway.pk]
    assert sent == [local_gateway.pk]
    assert ResolvedName.objects.get(name=NAME).addresses == ["127.0.0.3"]
    reconcile(local_gateway.pk)  # what the worker does with that message
    assert served_addresses(local_gateway) == ["127.0.0.3"]

    time.sleep(2.2)
    assert refresh_expired() == []  # expired again, resolved again, unchanged: no reconcile
    assert sent == [local_gateway.pk]


def test_a_rebind_found_by_the_refresh_never_reaches_envoy(local_gateway, dns_server, monkeypatch):
    """A hostile tenant's name answers an allowed address, then the metadata service: the
    refresh reconciles, and the backend is refused whole (its requests answer 500)."""
    monkeypatch.setattr("provisioning.tasks.send_reconcile", lambda pk, **kw: None)
    dns_server.records[NAME] = ["127.0.0.2"]
    reconcile(local_gateway.pk)
    assert served_addresses(local_gateway) == ["127.0.0.2"]
    dns_server.records[NAME] = ["169.254.169.254", "127.0.0.3"]
    time.sleep(1.2)
    assert refresh_expired() == [local_gateway.pk]
    reconcile(local_gateway.pk)
    compiled = json.dumps(compile_gateway(load_desired_state(local_gateway.pk)).as_dict())
    assert "169.254.169.254" not in compiled and NAME not in compiled
    assert '"acme/backend/api"' not in compiled


def test_kubernetes_gateways_are_left_to_envoy(org, dns_server):
    client = org.client(Role.EDITOR)
    spec = {"runtime": "kubernetes", "listeners": [{"name": "http", "protocol": "HTTP",
                                                    "port": 80}]}  # fmt: skip
    client.post(BASE + "gateways/", {"name": "edge", "spec": spec}, format="json")
    backend = {"endpoints": [{"fqdn": {"hostname": NAME, "port": 8080}}], "dns": {}}
    client.post(BASE + "backends/", {"name": "api", "spec": backend}, format="json")
    with override_settings(GANTRY_GATEWAY_DNS_RESOLVERS=[dns_server.address]):
        assert refresh_expired() == []
    assert dns_server.queries == []


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"endpoints": [{"ip": {"address": "10.0.0.1", "port": 80}}], "dns": {}}, "spec.dns"),
        (
            {
                "endpoints": [
                    {"fqdn": {"hostname": "a.example.com", "port": 80}},
                    {"fqdn": {"hostname": "b.example.com", "port": 80}},
                ],
                "dns": {"resolution": "Logical"},
            },
            "spec.endpoints",
        ),  # fmt: skip
        (
            {
                "endpoints": [{"fqdn": {"hostname": "a.example.com", "port": 80}}],
                "dns": {"refreshRate": "500ms"},
            },
            "spec.dns.refreshRate",
        ),  # fmt: skip
        (
            {
                "endpoints": [{"fqdn": {"hostname": "a.example.com", "port": 80}}],
                "dns": {"resolution": "Sometimes"},
            },
            "spec.dns.resolution",
        ),  # fmt: skip
        (
            {"endpoints": [{"fqdn": {"hostname": "a.example.com", "port": 80}}], "dns": {"ttl": 5}},
            "spec.dns.ttl",
        ),  # fmt: skip
    ],
)
def test_bad_dns_settings_name_their_field_and_save_nothing(org, spec, path):
    client = org.client(Role.EDITOR)
    response = client.post(BASE + "backends/", {"name": "api", "spec": spec}, format="json")
    assert response.status_code == 400, response.content
    assert path in json.dumps(response.json()), response.json()
    assert client.get(BASE + "backends/api/").status_code == 404


def test_dns_settings_get_their_defaults(org):
    client = org.client(Role.EDITOR)
    spec = {"endpoints": [{"fqdn": {"hostname": "a.example.com", "port": 80}}], "dns": {}}
    response = client.post(BASE + "backends/", {"name": "api", "spec": spec}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["spec"]["dns"] == {
        "resolution": "Strict",
        "respectTtl": True,
        "refreshRate": "30s",
    }
