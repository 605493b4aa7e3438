"""SecurityPolicy ``extAuth.grpc`` through a real Envoy: a real grpcio server implementing
Envoy's authorization API (``envoy.service.auth.v3.Authorization/Check``) allows or denies each
request, sees its path and headers, and adds a header the upstream gets; a service that is down
fails closed (403)."""

from concurrent import futures

import grpc
import pytest
import requests
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import status_pb2

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, free_port, running_envoy

pytestmark = pytest.mark.slow
GROUP = "gateway.networking.k8s.io"
OK, PERMISSION_DENIED = 0, 7


class Authorizer(external_auth_pb2_grpc.AuthorizationServicer):
    """Allows requests carrying ``authorization: Bearer letmein`` and says who they are."""

    def __init__(self):
        self.checks: list[dict] = []

    def Check(self, request, context):  # noqa: N802 - the gRPC method's name
        http = request.attributes.request.http
        self.checks.append({"path": http.path, "headers": dict(http.headers)})
        answer = external_auth_pb2.CheckResponse()
        if http.headers.get("authorization") == "Bearer letmein":
            answer.status.CopyFrom(status_pb2.Status(code=OK))
            header = answer.ok_response.headers.add()
            header.header.key, header.header.value = "x-user", "alice"
        else:
            answer.status.CopyFrom(status_pb2.Status(code=PERMISSION_DENIED))
            answer.denied_response.status.code = 403
            answer.denied_response.body = "denied by the gRPC authorizer"
        return answer


def policy(name, backend, **extra):
    ref = {"group": GROUP, "kind": "HTTPRoute", "name": name}
    return {"name": name, "kind": "SecurityPolicy", "spec": {"targetRefs": [ref], "extAuth": {
        "grpc": {"backendRefs": [{"name": backend}]}, **extra}}}  # fmt: skip


@pytest.fixture(scope="module")
def gateway():
    app, authorizer = Upstream("app"), Authorizer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(authorizer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    dead = free_port()

    def grpc_backend(at):
        return {"appProtocol": "gRPC", "endpoints": [{"ip": {"address": "127.0.0.1",
                                                             "port": at}}]}  # fmt: skip

    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": name, "spec": {"hostnames": [f"{name}.test"], "rules": [
            {"backendRefs": [{"name": "app"}]}]}} for name in ("guarded", "down", "http1")],
        backends={"app": app.backend(), "authz": grpc_backend(port), "dead": grpc_backend(dead),
                  "authz-http1": {"endpoints": grpc_backend(port)["endpoints"]}},
        policies=[policy("guarded", "authz"), policy("down", "dead", timeout="2s"),
                  policy("http1", "authz-http1", timeout="2s")],
    )  # fmt: skip
    with running_envoy(state) as ports:

        def get(host, path="/", headers=None):
            return requests.get(f"http://127.0.0.1:{ports[80]}{path}", timeout=10,
                                headers={"Host": host, **(headers or {})})  # fmt: skip

        get.authorizer = authorizer
        yield get
    app.close()
    server.stop(None)


def test_an_allowed_request_reaches_the_upstream_with_the_services_header(gateway):
    answer = gateway("guarded.test", "/orders/7", {"Authorization": "Bearer letmein",
                                                   "X-User": "mallory"})  # fmt: skip
    assert answer.status_code == 200
    assert answer.json()["headers"]["x-user"] == "alice"
    check = gateway.authorizer.checks[-1]
    assert check["path"] == "/orders/7"
    assert check["headers"]["authorization"] == "Bearer letmein"


def test_a_denied_request_gets_the_services_answer(gateway):
    answer = gateway("guarded.test", "/orders/7", {"Authorization": "Bearer guess"})
    assert answer.status_code == 403
    assert answer.text == "denied by the gRPC authorizer"


def test_a_service_that_is_down_fails_closed(gateway):
    answer = gateway("down.test", "/", {"Authorization": "Bearer letmein"})
    assert answer.status_code == 403


def test_a_service_declared_http11_fails_closed(gateway):
    """gRPC needs HTTP/2: the same authorizer as an HTTP/1.1 backend cannot be asked."""
    answer = gateway("http1.test", "/", {"Authorization": "Bearer letmein"})
    assert answer.status_code == 403
