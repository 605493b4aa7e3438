"""Real Envoys bootstrapped against the real ADS server, serving real upstreams."""

import copy
import dataclasses
import statistics
import time

import pytest
import requests

from provisioning.translate.types import ROUTE_CONFIGURATION, VIRTUAL_HOST
from tests.provisioning.harness import free_port
from tests.xds.conftest import compiled
from tests.xds.harness import running_envoy, wait_for

pytestmark = pytest.mark.slow

API_TYPES = ["DELTA_GRPC", "GRPC"]
EDGE, EDGE_TOKEN = "acme/edge", "acme-edge-token"
WEB, WEB_TOKEN = "globex/web", "globex-web-token"


def backend_of(session: requests.Session, port: int, host: str = "x.test") -> str:
    response = session.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=5)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()["backend"]


def backends(upstreams) -> dict:
    return {name: upstream.backend() for name, upstream in upstreams.items()}


def seconds_until_served_by(session, port, want, since, timeout=5.0) -> float:
    """Requests back to back until one reaches ``want``; seconds since ``since``."""
    while backend_of(session, port) != want:
        if time.perf_counter() - since > timeout:
            raise AssertionError(f"still not served by {want} after {timeout} s")
    return time.perf_counter() - since


@pytest.mark.parametrize("api_type", API_TYPES)
def test_envoy_serves_its_config_and_every_change_applies_in_milliseconds(xds, upstreams, api_type):
    port = free_port()
    xds.store.set(EDGE, "v0", compiled("acme", "edge", "a", backends(upstreams), port))
    bootstrap = xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port(), api_type)
    with running_envoy(bootstrap) as envoy:
        session = requests.Session()
        assert backend_of(session, port) == "a"
        assert envoy.dynamic_listener_names() == {"acme/edge/port/80"}
        latencies = []
        for change in range(1, 21):
            want = "b" if change % 2 else "a"
            resources = compiled("acme", "edge", want, backends(upstreams), port)
            start = time.perf_counter()
            xds.store.set(EDGE, f"v{change}", resources)
            latencies.append(seconds_until_served_by(session, port, want, start))
        wait_for(lambda: xds.acks_for("acme/edge/0", ROUTE_CONFIGURATION)[-1].version == "v20")
    ms = sorted(1000 * s for s in latencies)
    print(f"\n{api_type}: store.set → first request served by the new route, 20 changes: "
          f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms")  # fmt: skip
    # A sanity bound, not the speed figure (bench/propagation.py measures that): every change
    # is served within seconds, even on a loaded machine.
    assert ms[-1] < 5000
    assert not [a for a in xds.acks if a.error]


@pytest.mark.parametrize("api_type", API_TYPES)
def test_a_rejected_config_is_reported_and_the_previous_one_keeps_serving(xds, upstreams, api_type):
    port = free_port()
    xds.store.set(EDGE, "good", compiled("acme", "edge", "a", backends(upstreams), port))
    with running_envoy(xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port(), api_type)):
        session = requests.Session()
        assert backend_of(session, port) == "a"
        bad = compiled("acme", "edge", "b", backends(upstreams), port)
        route = copy.deepcopy(bad.routes[0])
        # RE2 has no lookahead: Envoy refuses the whole route configuration.
        route["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": "/(?=x)"}}
        xds.store.set(EDGE, "bad", dataclasses.replace(bad, routes=(route,)))

        # Over Delta the virtual host is what Envoy refuses (VHDS); in full, the routes.
        routes_type = VIRTUAL_HOST if api_type == "DELTA_GRPC" else ROUTE_CONFIGURATION

        def rejection():
            acks = xds.acks_for("acme/edge/0", routes_type)
            return acks[-1] if acks and acks[-1].version == "bad" else None

        ack = wait_for(rejection, message="the NACK")
        assert "invalid perl operator" in ack.error
        assert [backend_of(session, port) for _ in range(20)] == ["a"] * 20

        # A fixed config after the rejected one applies normally.
        resources = compiled("acme", "edge", "b", backends(upstreams), port)
        xds.store.set(EDGE, "fixed", resources)
        seconds_until_served_by(session, port, "b", time.perf_counter())
        wait_for(lambda: xds.acks_for("acme/edge/0", routes_type)[-1].error is None)


@pytest.mark.parametrize(
    "token, gateway_key",
    [("not-a-token", EDGE), (EDGE_TOKEN, WEB)],
    ids=["wrong-token", "another-gateways-node-id"],
)
def test_an_envoy_without_its_gateways_token_is_refused_and_gets_nothing(
    xds, upstreams, token, gateway_key, caplog
):
    xds.store.set(EDGE, "v1", compiled("acme", "edge", "a", backends(upstreams), free_port()))
    xds.store.set(WEB, "w1", compiled("globex", "web", "a", backends(upstreams), free_port()))
    bootstrap = xds.bootstrap(gateway_key, 0, token, free_port())
    with running_envoy(bootstrap, wait_ready=False) as envoy:
        # It keeps retrying (backoff up to 1 s) and is refused each time.
        wait_for(lambda: sum("refused a stream" in r.getMessage() for r in caplog.records) >= 2,
                 message="two refusals")  # fmt: skip
        # Envoy saw gRPC status 16 (UNAUTHENTICATED) and the reason.
        assert "config stream to xds closed: 16, " in envoy.log()
        assert envoy.dynamic_listener_names() == set()
        assert envoy.dynamic_cluster_names() == set()
    assert xds.acks == []
    assert xds.connected(EDGE) == xds.connected(WEB) == set()


def test_two_gateways_on_one_server_each_get_only_their_own_config(xds, upstreams):
    edge_port, web_port = free_port(), free_port()
    xds.store.set(EDGE, "e1", compiled("acme", "edge", "a", backends(upstreams), edge_port))
    xds.store.set(WEB, "w1", compiled("globex", "web", "b", backends(upstreams), web_port))
    with (
        running_envoy(xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port())) as edge,
        running_envoy(xds.bootstrap(WEB, 0, WEB_TOKEN, free_port())) as web,
    ):
        session = requests.Session()
        assert backend_of(session, edge_port) == "a"
        assert backend_of(session, web_port) == "b"
        assert edge.dynamic_listener_names() == {"acme/edge/port/80"}
        assert web.dynamic_listener_names() == {"globex/web/port/80"}
        assert edge.dynamic_cluster_names() == {"acme/backend/a", "acme/backend/b"}
        assert web.dynamic_cluster_names() == {"globex/backend/a", "globex/backend/b"}
        assert xds.connected(EDGE) == {"acme/edge/0"}
        assert xds.connected(WEB) == {"globex/web/0"}


def test_every_replica_of_a_gateway_gets_the_new_config(xds, upstreams):
    port = free_port()
    xds.store.set(EDGE, "v1", compiled("acme", "edge", "a", backends(upstreams), port))
    with (
        running_envoy(xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port())),
        running_envoy(xds.bootstrap(EDGE, 1, EDGE_TOKEN, free_port(), "GRPC")),
    ):
        assert xds.connected(EDGE) == {"acme/edge/0", "acme/edge/1"}
        xds.store.set(EDGE, "v2", compiled("acme", "edge", "b", backends(upstreams), port))
        for node_id in ("acme/edge/0", "acme/edge/1"):
            wait_for(lambda n=node_id: [a.version for a in xds.acks_for(n)][-3:] == ["v2"] * 3,
                     message=f"{node_id} ACKs v2")  # fmt: skip
        # Both replicas bind the same port (SO_REUSEPORT); every request reaches b now.
        session = requests.Session()
        assert {backend_of(session, port) for _ in range(20)} == {"b"}


@pytest.mark.parametrize("api_type", API_TYPES)
def test_envoy_outlives_the_server_and_reconnects_fast_when_it_is_back(xds, upstreams, api_type):
    port = free_port()
    xds.store.set(EDGE, "v1", compiled("acme", "edge", "a", backends(upstreams), port))
    with running_envoy(xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port(), api_type)):
        session = requests.Session()
        assert backend_of(session, port) == "a"
        xds.stop()
        served = []
        for _ in range(20):  # one second without a server
            served.append(backend_of(session, port))
            time.sleep(0.05)
        assert served == ["a"] * 20
        xds.store.set(EDGE, "v2", compiled("acme", "edge", "b", backends(upstreams), port))

        start = time.perf_counter()
        xds.start()
        wait_for(lambda: xds.connected(EDGE), timeout=5, message="the reconnection")
        reconnected = time.perf_counter() - start
        converged = seconds_until_served_by(session, port, "b", start)
    print(f"\n{api_type}: server restarted → Envoy reconnected in {reconnected * 1000:.0f} ms, "
          f"served the newer config after {converged * 1000:.0f} ms")  # fmt: skip
    assert reconnected < 2


@pytest.mark.parametrize("api_type", API_TYPES)
def test_a_change_that_drops_a_cluster_never_answers_503(xds, upstreams, api_type):
    """Each revision holds only the cluster its route uses (as reconcile compiles them): the
    old cluster must outlive the old routes, or requests in between get 503 no_cluster."""
    port = free_port()

    def only(name):
        return compiled("acme", "edge", name, {name: upstreams[name].backend()}, port)

    xds.store.set(EDGE, "v0", only("a"))
    bootstrap = xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port(), api_type)
    with running_envoy(bootstrap) as envoy:
        assert envoy.dynamic_listener_names() == {"acme/edge/port/80"}
        session = requests.Session()
        for change in range(1, 11):
            want = "b" if change % 2 else "a"
            xds.store.set(EDGE, f"v{change}", only(want))
            seconds_until_served_by(session, port, want, time.perf_counter())  # 200s only
