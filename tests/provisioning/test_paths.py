"""Request paths are normalized before routes and policies see them, so a path written another
way cannot reach a route without its policies: dot segments resolved, adjacent slashes merged,
percent-encoded unreserved characters decoded, an escaped slash redirected (Envoy Gateway's
defaults); a ClientTrafficPolicy ``path`` changes the last two per listener. Real Envoy, raw
HTTP/1.1 requests (HTTP clients would clean the paths up themselves)."""

import socket

import pytest

from gateways.validation.policies import validate_policy_spec
from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow

GROUP = "gateway.networking.k8s.io"
LISTENERS = [
    {"name": "default", "protocol": "HTTP", "port": 80},
    {"name": "strict", "protocol": "HTTP", "port": 81},
    {"name": "raw", "protocol": "HTTP", "port": 82},
]
NAMES = [listener["name"] for listener in LISTENERS]


def policy(name, kind, **spec):
    return {"name": name, "kind": kind,
            "spec": validate_policy_spec(kind, spec, "edge", NAMES)}  # fmt: skip


@pytest.fixture(scope="module")
def gateway():
    upstream = Upstream("app")
    admin = {"name": "admin", "spec": {"rules": [{
        "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
        "backendRefs": [{"name": "app"}]}]}}  # fmt: skip
    site = {"name": "site", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}
    listener = {"group": GROUP, "kind": "Gateway", "name": "edge"}
    state = DesiredState(
        tenant="acme", gateway="edge", spec={"listeners": LISTENERS},
        routes=[admin, site], backends={"app": upstream.backend()},
        policies=[
            policy("admin-closed", "SecurityPolicy",
                   targetRefs=[{"group": GROUP, "kind": "HTTPRoute", "name": "admin"}],
                   authorization={"defaultAction": "Deny"}),
            policy("strict", "ClientTrafficPolicy",
                   targetRefs=[{**listener, "sectionName": "strict"}],
                   path={"escapedSlashesAction": "RejectRequest", "disableMergeSlashes": True}),
            policy("raw", "ClientTrafficPolicy", targetRefs=[{**listener, "sectionName": "raw"}],
                   path={"escapedSlashesAction": "KeepUnchanged"}),
        ],
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports, upstream
    upstream.close()


def request(port: int, path: str) -> tuple[int, dict]:
    """(status, lowercase headers) of one raw GET."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split()[1]), headers


def seen(upstream: Upstream) -> str:
    return upstream.requests[-1]["path"]


@pytest.mark.parametrize("path", ["/admin", "/public/../admin", "/./admin/", "//admin",
                                  "/%61dmin", "/public/%2e%2e/admin"])  # fmt: skip
def test_every_spelling_of_a_protected_path_meets_its_policy(gateway, path):
    ports, _ = gateway
    assert request(ports[80], path)[0] == 403


def test_paths_reach_the_backend_normalized(gateway):
    ports, upstream = gateway
    assert request(ports[80], "/docs/./a//b/../c")[0] == 200
    assert seen(upstream) == "/docs/a/c"


def test_an_escaped_slash_is_redirected_to_the_unescaped_path(gateway):
    ports, _ = gateway
    status, headers = request(ports[80], "/admin%2Fusers")
    assert status == 307
    assert headers["location"].endswith("/admin/users")


def test_a_listener_can_refuse_escaped_slashes_and_keep_adjacent_ones(gateway):
    ports, upstream = gateway
    assert request(ports[81], "/files/a%2Fb")[0] == 400
    assert request(ports[81], "//admin")[0] == 200  # not merged: not the admin route's path
    assert request(ports[81], "/files//x")[0] == 200
    assert seen(upstream) == "/files//x"
    assert request(ports[81], "/public/../admin")[0] == 403  # dot segments still resolved


def test_a_listener_can_pass_escaped_slashes_unchanged(gateway):
    ports, upstream = gateway
    assert request(ports[82], "/files/a%2Fb")[0] == 200
    assert seen(upstream) == "/files/a%2Fb"
