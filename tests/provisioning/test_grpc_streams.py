"""Long gRPC streams through a real Envoy: a GRPCRoute has no whole-request timeout (Envoy's
default of 15 s would cut every longer stream) unless a BackendTrafficPolicy sets one."""

import time

import grpc
import pytest

from provisioning.ir.build import DesiredState
from tests.provisioning.grpc_servers import EchoServer
from tests.provisioning.harness import running_envoy

pytestmark = pytest.mark.slow
GROUP = "gateway.networking.k8s.io"
TICKS = "/gantry.test.Clock/Ticks"


@pytest.fixture(scope="module")
def gateway():
    server = EchoServer("clock")
    routes = [
        {"name": name, "kind": "GRPCRoute", "spec": {
            "hostnames": [f"{name}.test"], "rules": [{"backendRefs": [{"name": "clock"}]}]}}
        for name in ("open", "limited")
    ]  # fmt: skip
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=routes,
        backends={"clock": server.backend()},
        policies=[{"name": "two-seconds", "kind": "BackendTrafficPolicy", "spec": {
            "targetRefs": [{"group": GROUP, "kind": "GRPCRoute", "name": "limited"}],
            "timeout": {"http": {"requestTimeout": "2s"}}}}],
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports[80]
    server.close()


def ticks(port: int, host: str, count: int, interval_ms: int) -> tuple[list[bytes], object]:
    """The messages of one server stream, and the error that ended it (or None)."""
    received: list[bytes] = []
    options = [("grpc.default_authority", host)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stream = channel.unary_stream(TICKS)(f"{count},{interval_ms}".encode(), timeout=60)
        try:
            for message in stream:
                received.append(message)
        except grpc.RpcError as error:
            return received, error
    return received, None


def test_a_server_stream_outlives_envoys_default_route_timeout(gateway):
    started = time.monotonic()
    received, error = ticks(gateway, "open.test", count=18, interval_ms=1000)
    assert error is None
    assert received == [f"clock|tick|{i}".encode() for i in range(18)]
    assert time.monotonic() - started > 16  # past the 15 s Envoy would otherwise allow


def test_a_policy_request_timeout_still_ends_a_grpc_stream(gateway):
    received, error = ticks(gateway, "limited.test", count=6, interval_ms=1000)
    assert error is not None
    assert 1 <= len(received) < 6
