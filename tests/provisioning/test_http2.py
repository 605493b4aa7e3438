"""HTTP/2 both ways through real Envoy: a gRPC client (h2c) to a gRPC backend, beside
HTTP/1.1 clients and backends on the same listener; the backend's appProtocol decides."""

from concurrent import futures

import grpc
import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow
METHOD = "/gantry.test.Echo/Say"


def grpc_backend():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))

    def say(request: bytes, context) -> bytes:
        return b"echo:" + request

    handler = grpc.method_handlers_generic_handler(
        "gantry.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture(scope="module")
def gateway():
    server, port = grpc_backend()
    web = Upstream("web")
    endpoint = {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]}
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[
            {"name": "grpc", "spec": {"hostnames": ["grpc.test"], "rules": [
                {"backendRefs": [{"name": "echo"}]}]}},
            {"name": "grpc-wrong", "spec": {"hostnames": ["wrong.test"], "rules": [
                {"backendRefs": [{"name": "echo-as-http1"}]}]}},
            {"name": "web", "spec": {"hostnames": ["web.test"], "rules": [
                {"backendRefs": [{"name": "web"}]}]}},
        ],
        backends={"echo": {**endpoint, "appProtocol": "gRPC"}, "echo-as-http1": endpoint,
                  "web": web.backend()},
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports[80]
    web.close()
    server.stop(None)


def call(port: int, authority: str) -> bytes:
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        return channel.unary_unary(METHOD)(b"hi", timeout=5)


def test_grpc_over_h2c_reaches_a_grpc_backend(gateway):
    assert call(gateway, "grpc.test") == b"echo:hi"


def test_http11_clients_share_the_listener(gateway):
    answer = requests.get(f"http://127.0.0.1:{gateway}/", headers={"Host": "web.test"}, timeout=5)
    assert answer.json()["backend"] == "web"


def test_a_grpc_backend_declared_http11_does_not_work(gateway):
    with pytest.raises(grpc.RpcError):
        call(gateway, "wrong.test")
