"""DubboRoutes through a real Envoy (dubbo_proxy, Hessian2) with the tests' own Dubbo servers
and client (tests/provisioning/dubbo_server.py): interfaces to backends, group and version,
methods, attachments, weights, precedence, unmatched and unreachable calls answered with a
Dubbo error (never a hang), HTTP beside it on another port, and a tenant that names another
tenant's backend reaching nothing."""

import socket
from collections import Counter

import pytest
import requests

from provisioning.desired import load_desired_state
from provisioning.ir.build import DesiredState
from tenants.roles import Role
from tests.provisioning import hessian2
from tests.provisioning.dubbo_server import (
    EVENT,
    HESSIAN2,
    OK,
    REQUEST,
    SERVER_ERROR,
    SERVICE_NOT_FOUND,
    TWO_WAY,
    DubboClient,
    DubboServer,
    frame,
    read_frame,
)
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow
GREETER = "org.apache.dubbo.samples.Greeter"
OTHER = "org.apache.dubbo.samples.Other"
VERSIONED = "org.apache.dubbo.samples.Versioned"
METHODS = "org.apache.dubbo.samples.Methods"
TAGGED = "org.apache.dubbo.samples.Tagged"
WEIGHTED = "org.apache.dubbo.samples.Weighted"
MISSING = "org.apache.dubbo.samples.Missing"


def dubbo_route(name, *rules, parent=None):
    spec = {"rules": list(rules)}
    if parent:
        spec["parentRefs"] = [{"sectionName": parent}]
    return {"name": name, "kind": "DubboRoute", "spec": spec}


def rule(match, *backends):
    """backends: names (weight 1) or (name, weight) pairs."""
    refs = [(b, 1) if isinstance(b, str) else b for b in backends]
    return {"matches": [match], "backendRefs": [{"name": n, "weight": w} for n, w in refs]}


@pytest.fixture(scope="module")
def servers():
    made = {name: DubboServer(name) for name in ("a", "b", "c", "d")}
    yield made
    for server in made.values():
        server.close()


@pytest.fixture(scope="module")
def gateway(servers):
    web = Upstream("web")
    routes = [
        dubbo_route("greeter", rule({"service": GREETER}, "a")),
        dubbo_route("other", rule({"service": OTHER}, "b")),
        # The catch-all comes first in the spec: the more specific matches still win.
        dubbo_route(
            "versioned",
            rule({"service": VERSIONED}, "a"),
            rule({"service": VERSIONED, "version": "2.0.0"}, "b"),
            rule({"service": VERSIONED, "group": "canary"}, "c"),
            rule({"service": VERSIONED, "group": "canary", "version": "2.0.0"}, "d"),
        ),
        dubbo_route("methods", rule({"service": METHODS}, "a"),
                    rule({"service": METHODS, "method": "shout"}, "b")),
        dubbo_route(
            "tagged",
            rule({"service": TAGGED}, "a"),
            rule({"service": TAGGED, "attachments": [{"name": "tier", "value": "gold"}]}, "c"),
            rule({"service": TAGGED, "attachments": [
                {"type": "RegularExpression", "name": "region", "value": "eu-.*"}]}, "d"),
        ),
        dubbo_route("weighted", rule({"service": WEIGHTED}, ("a", 50), ("b", 50), ("c", 0))),
        dubbo_route("missing", rule({"service": MISSING}, "nowhere")),
        # A DubboRoute never attaches to the HTTP listener, nor an HTTPRoute to the Dubbo one.
        {"name": "web", "spec": {"rules": [{"backendRefs": [{"name": "web"}]}]}},
    ]  # fmt: skip
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [
            {"name": "rpc", "protocol": "Dubbo", "port": 20880},
            {"name": "http", "protocol": "HTTP", "port": 80},
        ]},
        routes=routes,
        backends={**{name: s.backend() for name, s in servers.items()}, "web": web.backend()},
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports
    web.close()


@pytest.fixture
def client(gateway):
    with DubboClient(gateway[20880]) as made:
        yield made


def test_two_interfaces_go_to_their_backends(client):
    answer = client.call(GREETER, "sayHello", "world", 7)
    assert answer.status == OK
    assert answer.value == f"a|{GREETER}|0.0.0||sayHello|world,7"
    assert client.call(OTHER, "sayHello", "world").backend == "b"
    # Several calls on one connection, each routed on its own.
    assert [client.call(s, "m").backend for s in (GREETER, OTHER, GREETER)] == ["a", "b", "a"]


def test_the_backend_gets_the_call_as_sent(client, servers):
    servers["c"].calls.clear()
    client.call(VERSIONED, "find", "key", 42, group="canary", attachments={"trace": "t-1"})
    [call] = servers["c"].calls
    assert (call.service, call.method, call.args, call.version) == (
        VERSIONED, "find", ["key", 42], "0.0.0")  # fmt: skip
    assert call.attachments["group"] == "canary"
    assert call.attachments["trace"] == "t-1"


@pytest.mark.parametrize(
    ("version", "group", "backend"),
    [
        ("0.0.0", None, "a"),
        ("1.0.0", None, "a"),
        ("2.0.0", None, "b"),
        ("1.0.0", "canary", "c"),
        ("2.0.0", "canary", "d"),
        ("2.0.0", "blue", "b"),
    ],
)
def test_group_and_version_select_the_backend(client, version, group, backend):
    answer = client.call(VERSIONED, "sayHello", "x", version=version, group=group)
    assert answer.status == OK
    assert answer.backend == backend


def test_method_match(client):
    assert client.call(METHODS, "shout", "x").backend == "b"
    assert client.call(METHODS, "sayHello", "x").backend == "a"
    assert client.call(METHODS, "shouting", "x").backend == "a"  # exact names only


def test_attachment_match(client):
    assert client.call(TAGGED, "m", attachments={"tier": "gold"}).backend == "c"
    assert client.call(TAGGED, "m", attachments={"tier": "silver"}).backend == "a"
    assert client.call(TAGGED, "m", attachments={"region": "eu-west"}).backend == "d"
    assert client.call(TAGGED, "m", attachments={"region": "us-east"}).backend == "a"
    assert client.call(TAGGED, "m").backend == "a"


def test_weights_split_the_calls_and_weight_zero_gets_none(client):
    seen = Counter(client.call(WEIGHTED, "m", str(i)).backend for i in range(200))
    assert set(seen) <= {"a", "b"}
    assert 60 <= seen["a"] <= 140, seen  # 50/50; p(outside) < 1e-8


def test_an_unmatched_interface_gets_service_not_found_and_the_connection_stays(client):
    answer = client.call("org.apache.dubbo.samples.Unknown", "sayHello", "x")
    assert answer.status == SERVICE_NOT_FOUND
    assert answer.value == "dubbo router: no route for interface 'org.apache.dubbo.samples.Unknown'"
    assert client.call(GREETER, "sayHello").status == OK  # the same connection goes on


def test_a_missing_backend_gets_an_error_answer_not_a_hang(client):
    answer = client.call(MISSING, "sayHello", "x")
    assert answer.status == SERVER_ERROR
    assert "no healthy upstream" in answer.value
    assert client.call(GREETER, "sayHello").status == OK


def test_envoy_answers_heartbeats(gateway, servers):
    before = sum(len(s.calls) for s in servers.values())
    with socket.create_connection(("127.0.0.1", gateway[20880]), timeout=5) as sock:
        sock.sendall(frame(REQUEST | TWO_WAY | EVENT | HESSIAN2, 0, 77, hessian2.encode(None)))
        flag, status, request_id, _ = read_frame(sock)
    assert (status, request_id) == (OK, 77)
    assert flag & EVENT and not flag & REQUEST
    assert sum(len(s.calls) for s in servers.values()) == before


def test_http_and_dubbo_keep_to_their_own_listeners(gateway, servers):
    answer = requests.get(f"http://127.0.0.1:{gateway[80]}/", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["backend"] == "web"
    # HTTP on the Dubbo port is not Dubbo: Envoy closes the connection, no backend is called.
    before = sum(len(s.calls) for s in servers.values())
    with socket.create_connection(("127.0.0.1", gateway[20880]), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024) == b""
    assert sum(len(s.calls) for s in servers.values()) == before


def test_a_dubbo_route_naming_another_tenants_backend_reaches_nothing(org, other_org):
    """Through the API: globex's backend is not acme's, whatever the name; acme's DubboRoute
    reports it missing and its calls get an error, and globex's server is never called."""
    secret = DubboServer("secret")
    try:
        globex = other_org.client(Role.EDITOR)
        assert globex.post("/api/v1/tenants/globex/backends/",
                           {"name": "secret", "spec": secret.backend()},
                           format="json").status_code == 202  # fmt: skip
        acme = org.client(Role.EDITOR)
        base = "/api/v1/tenants/acme/"
        listeners = [{"name": "rpc", "protocol": "Dubbo", "port": 20880}]
        assert acme.post(base + "gateways/", {"name": "edge", "spec": {"listeners": listeners}},
                         format="json").status_code == 202  # fmt: skip
        created = acme.post(base + "gateways/edge/dubboroutes/", {"name": "steal", "spec": {
            "rules": [rule({"service": GREETER}, "secret")]}}, format="json")  # fmt: skip
        assert created.status_code == 202, created.content
        resolved = {c["type"]: c for c in created.json()["status"]["conditions"]}["ResolvedRefs"]
        assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")
        state = load_desired_state(org.tenant.gateways.get(name="edge").pk)
        assert "secret" not in state.backends
        with running_envoy(state) as ports, DubboClient(ports[20880]) as dubbo:
            answer = dubbo.call(GREETER, "sayHello", "x")
            assert answer.status != OK
        assert secret.calls == []
    finally:
        secret.close()
