"""GRPCRoute through a real Envoy with real grpcio clients and servers: Gateway API's GRPCRoute
conformance behaviours (the tests are named after theirs), unmatched methods answered as gRPC
UNIMPLEMENTED, gRPC-Web from an HTTP/1.1 client, HTTP/1.1 clients on the same listener."""

import http.client
import struct
import time

import grpc
import pytest

from provisioning.ir.build import DesiredState
from tests.provisioning.grpc_servers import EchoServer, backend_of, call
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow
SAY = "/gantry.test.Echo/Say"


def grpc_route(name, hostnames, *rules):
    return {"name": name, "kind": "GRPCRoute", "spec": {"hostnames": hostnames,
                                                         "rules": list(rules)}}  # fmt: skip


def rule(matches, *backends, filters=None):
    """backends: names (weight 1) or (name, weight) pairs."""
    refs = [(b, 1) if isinstance(b, str) else b for b in backends]
    body = {"matches": matches, "backendRefs": [{"name": n, "weight": w} for n, w in refs]}
    if filters:
        body["filters"] = filters
    return body


def method(service=None, name=None, kind="Exact"):
    match = {"type": kind}
    if service:
        match["service"] = service
    if name:
        match["method"] = name
    return {"method": match}


@pytest.fixture(scope="module")
def servers():
    made = {name: EchoServer(name) for name in ("a", "b", "c", "shadow")}
    yield made
    for server in made.values():
        server.close()


@pytest.fixture(scope="module")
def gateway(servers):
    web = Upstream("web")
    routes = [
        grpc_route("exact", ["exact.test"],
                   rule([method("gantry.test.Echo", "Say")], "a"),
                   rule([method("gantry.test.Echo", "Shout")], "b"),
                   rule([method("gantry.other.Echo")], "c")),
        grpc_route("method-only", ["method.test"], rule([method(name="Say")], "b")),
        grpc_route("regex", ["regex.test"],
                   rule([method("gantry\\.test\\..*", "S.*", kind="RegularExpression")], "c")),
        grpc_route("headers", ["headers.test"],
                   rule([{**method("gantry.test.Echo", "Say"),
                          "headers": [{"name": "version", "value": "two"}]}], "b"),
                   rule([method("gantry.test.Echo", "Say")], "a")),
        grpc_route("weights", ["weights.test"], rule([], ("a", 50), ("b", 50), ("c", 0))),
        grpc_route("modifiers", ["modifiers.test"], rule([], "a", filters=[
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                "set": [{"name": "x-echo", "value": "set-by-gateway"}]}},
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                "add": [{"name": "x-from-gateway", "value": "yes"}]}},
        ])),
        grpc_route("mirror", ["mirror.test"], rule([], "a", filters=[
            {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}}}])),
        grpc_route("listener", [], rule([], "c")),
        {"name": "web", "spec": {"hostnames": ["exact.test"], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/web"}}],
             "backendRefs": [{"name": "web"}]}]}},
    ]  # fmt: skip
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.test"},
            {"name": "only", "protocol": "HTTP", "port": 81, "hostname": "only.example"},
        ]},
        routes=routes,
        backends={**{name: s.backend() for name, s in servers.items()}, "web": web.backend()},
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports
    web.close()


def test_grpc_exact_method_matching(gateway):
    port = gateway[80]
    assert backend_of(call(port, "exact.test", SAY)[0]) == "a"
    assert backend_of(call(port, "exact.test", "/gantry.test.Echo/Shout")[0]) == "b"
    answer, _ = call(port, "exact.test", SAY, payload=b"payload")
    assert answer == b"a|/gantry.test.Echo/Say||payload"


def test_grpc_service_matching_takes_every_method(gateway):
    port = gateway[80]
    assert backend_of(call(port, "exact.test", "/gantry.other.Echo/Anything")[0]) == "c"
    assert backend_of(call(port, "exact.test", "/gantry.other.Echo/Say")[0]) == "c"


def test_grpc_method_only_matching_takes_every_service(gateway):
    port = gateway[80]
    assert backend_of(call(port, "method.test", "/x.Y/Say")[0]) == "b"
    assert backend_of(call(port, "method.test", SAY)[0]) == "b"
    with pytest.raises(grpc.RpcError) as raised:
        call(port, "method.test", "/x.Y/Shout")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_regular_expression_method_matching(gateway):
    port = gateway[80]
    assert backend_of(call(port, "regex.test", "/gantry.test.Echo/Shout")[0]) == "c"
    with pytest.raises(grpc.RpcError) as raised:
        call(port, "regex.test", "/gantry.test.Echo/Whisper")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as raised:
        call(port, "regex.test", "/other.Echo/Say")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_route_header_matching(gateway):
    port = gateway[80]
    assert backend_of(call(port, "headers.test", SAY, [("version", "two")])[0]) == "b"
    assert backend_of(call(port, "headers.test", SAY, [("version", "one")])[0]) == "a"
    assert backend_of(call(port, "headers.test", SAY)[0]) == "a"


def test_grpc_route_unmatched_method_is_unimplemented(gateway):
    with pytest.raises(grpc.RpcError) as raised:
        call(gateway[80], "exact.test", "/gantry.test.Echo/Whisper")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "unknown service or method" in raised.value.details()


def test_http11_clients_share_the_hostname(gateway):
    """An HTTPRoute on the GRPCRoute's hostname still serves HTTP/1.1; other HTTP paths 404."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway[80], timeout=5)
    connection.request("GET", "/web/page", headers={"Host": "exact.test"})
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    connection.request("GET", "/gantry.test.Echo/Whisper", headers={"Host": "exact.test"})
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 404
    connection.close()


def test_grpc_route_weight(gateway):
    seen = [backend_of(call(gateway[80], "weights.test", SAY)[0]) for _ in range(60)]
    assert "c" not in seen  # weight 0
    assert 10 <= seen.count("a") <= 50, seen  # 50/50 within a wide tolerance


def test_grpc_route_request_and_response_header_modifiers(gateway):
    answer, metadata = call(gateway[80], "modifiers.test", SAY, [("x-echo", "from-client")])
    assert answer.split(b"|")[2] == b"set-by-gateway"
    assert metadata.get("x-from-gateway") == "yes"


def test_grpc_route_request_mirror(gateway, servers):
    before = len(servers["shadow"].calls)
    assert backend_of(call(gateway[80], "mirror.test", SAY)[0]) == "a"
    deadline = time.monotonic() + 5
    while len(servers["shadow"].calls) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert servers["shadow"].calls[before]["method"] == SAY


def test_grpc_route_listener_hostname_matching(gateway):
    """A GRPCRoute without hostnames takes its listeners': any *.test host on port 80 and
    only.example on port 81, nothing else."""
    assert backend_of(call(gateway[80], "anything.test", SAY)[0]) == "c"
    assert backend_of(call(gateway[81], "only.example", SAY)[0]) == "c"
    with pytest.raises(grpc.RpcError) as raised:
        call(gateway[81], "other.example", SAY)
    assert raised.value.code() != grpc.StatusCode.OK


def _grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while body:
        flag, size = struct.unpack(">BI", body[:5])
        frames.append((flag, body[5 : 5 + size]))
        body = body[5 + size :]
    return frames


def test_grpc_web_from_an_http11_client(gateway):
    """A browser's gRPC-Web call (HTTP/1.1 POST, 5-byte framing) reaches the grpcio server; the
    answer comes back framed, the status in a trailer frame."""
    message = b"from-browser"
    connection = http.client.HTTPConnection("127.0.0.1", gateway[80], timeout=5)
    connection.request(
        "POST",
        SAY,
        body=struct.pack(">BI", 0, len(message)) + message,
        headers={"Host": "exact.test", "Content-Type": "application/grpc-web+proto",
                 "X-Grpc-Web": "1", "X-Echo": "web"},
    )  # fmt: skip
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    assert answer.status == 200
    assert answer.getheader("content-type").startswith("application/grpc-web")
    frames = _grpc_web_frames(body)
    assert frames[0] == (0, b"a|/gantry.test.Echo/Say|web|from-browser")
    assert frames[-1][0] == 0x80 and b"grpc-status:0" in frames[-1][1]
