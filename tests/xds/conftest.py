"""Fixtures for the xDS server tests: no database; real servers, real Envoys, real upstreams."""

import pytest

from provisioning.compile import compile_gateway
from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream
from tests.xds.harness import LoopThread, XdsFixture

TOKENS = {"acme-edge-token": "acme/edge", "globex-web-token": "globex/web"}


def gateway_state(tenant: str, gateway: str, backend: str, backends: dict) -> DesiredState:
    """One HTTP listener on port 80 sending every request for ``x.test`` to ``backend``."""
    rule = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": backend}]}  # fmt: skip
    return DesiredState(
        tenant=tenant,
        gateway=gateway,
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "all", "spec": {"hostnames": ["x.test"], "rules": [rule]}}],
        backends=backends,
    )


def compiled(tenant, gateway, backend, backends, port):
    state = gateway_state(tenant, gateway, backend, backends)
    return compile_gateway(state, address="127.0.0.1", port_map={80: port})


@pytest.fixture(scope="session")
def loop_thread():
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def xds(loop_thread):
    fixture = XdsFixture(loop_thread, dict(TOKENS))
    fixture.start()
    yield fixture
    fixture.stop()


@pytest.fixture(scope="module")
def upstreams():
    servers = {name: Upstream(name) for name in ("a", "b")}
    for server in servers.values():
        # Without TCP_NODELAY every keep-alive response waits ~40 ms for a delayed ACK (headers
        # and body are written separately), which would hide the push latency we measure.
        server.server.RequestHandlerClass.disable_nagle_algorithm = True
    yield servers
    for server in servers.values():
        server.close()
