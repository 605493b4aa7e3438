"""Active gRPC health checks (BackendTrafficPolicy ``healthCheck.active.type: GRPC``) through a
real Envoy: a grpcio endpoint whose health service says NOT_SERVING stops getting calls, and gets
them again once it says SERVING."""

import time

import pytest

from provisioning.ir.build import DesiredState
from tests.provisioning.grpc_servers import NOT_SERVING, SERVING, EchoServer, backend_of, call
from tests.provisioning.harness import running_envoy

pytestmark = pytest.mark.slow
GROUP = "gateway.networking.k8s.io"
SAY = "/gantry.test.Echo/Say"


@pytest.fixture(scope="module")
def gateway():
    one, two = EchoServer("one"), EchoServer("two")
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "rpc", "kind": "GRPCRoute", "spec": {
            "hostnames": ["rpc.test"], "rules": [{"backendRefs": [{"name": "pair"}]}]}}],
        backends={"pair": {"appProtocol": "gRPC", "endpoints": [
            {"ip": {"address": "127.0.0.1", "port": server.port}} for server in (one, two)]}},
        policies=[{"name": "health", "kind": "BackendTrafficPolicy", "spec": {
            "targetRefs": [{"group": GROUP, "kind": "GRPCRoute", "name": "rpc"}],
            "healthCheck": {"active": {
                "type": "GRPC", "interval": "100ms", "timeout": "500ms",
                "unhealthyThreshold": 1, "healthyThreshold": 1,
                "grpc": {"service": "gantry.test.Echo"}}}}}],
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports[80], one, two
    one.close()
    two.close()


def spread(port: int, calls: int = 30) -> set[str]:
    return {backend_of(call(port, "rpc.test", SAY)[0]) for _ in range(calls)}


def wait_for(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_not_serving_endpoint_stops_getting_calls(gateway):
    port, one, two = gateway
    wait_for(lambda: one.health_checks and two.health_checks)
    # The checker asks about the configured service (HealthCheckRequest field 1).
    assert one.health_checks[-1] == b"\x0a\x10gantry.test.Echo"
    wait_for(lambda: spread(port) == {"one", "two"})

    two.serving = NOT_SERVING
    checks = len(two.health_checks)
    wait_for(lambda: len(two.health_checks) > checks + 1)
    assert all(spread(port) == {"one"} for _ in range(3))

    two.serving = SERVING
    wait_for(lambda: spread(port) == {"one", "two"})
