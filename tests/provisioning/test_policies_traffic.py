"""BackendTrafficPolicy through real Envoy and real upstreams: retries reaching a healthy
endpoint, circuit-breaker overflow, outlier ejection and active health checks (HTTP, TCP connect,
TCP send/receive) removing a dead or wrong endpoint, injected faults at the configured rate,
request timeouts."""

import concurrent.futures
import socket
import threading
import time

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, free_port, running_envoy

pytestmark = pytest.mark.slow

GROUP = "gateway.networking.k8s.io"


def route(name, backend):
    return {"name": name, "spec": {"hostnames": [f"{name}.test"],
                                   "rules": [{"backendRefs": [{"name": backend}]}]}}  # fmt: skip


def policy(name, **spec):
    ref = {"group": GROUP, "kind": "HTTPRoute", "name": name}
    return {"name": name, "kind": "BackendTrafficPolicy", "spec": {"targetRefs": [ref], **spec}}


def endpoints(*ports):
    return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}} for port in ports]}


class Stranger:
    """Accepts TCP connections and answers something that is not HTTP, then closes."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.sendall(b"NOPE\n")

    def close(self):
        self.listener.close()


@pytest.fixture(scope="module")
def gateway():
    good, failing, slow = Upstream("good"), Upstream("failing", status=503), Upstream("slow")
    stranger = Stranger()
    dead = free_port()  # nothing listens there: connections are refused
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[route("plain", "half-dead"), route("retry", "half-dead"),
                route("breaker", "slow"), route("outlier", "half-failing"),
                route("active", "half-dead"), route("fault", "good"), route("delay", "good"),
                route("timeout", "slow"), route("limited", "good"),
                route("tcp-connect", "half-dead"), route("tcp-payload", "half-stranger"),
                route("unchecked", "half-stranger")],
        backends={
            "half-dead": endpoints(good.port, dead),
            "half-failing": endpoints(good.port, failing.port),
            "good": endpoints(good.port),
            "slow": endpoints(slow.port),
            "half-stranger": endpoints(good.port, stranger.port),
        },
        policies=[
            policy("retry", retry={"numRetries": 3}),
            policy("breaker", circuitBreaker={"maxConnections": 1, "maxPendingRequests": 1,
                                              "maxParallelRequests": 1}),
            policy("outlier", healthCheck={"passive": {
                "consecutive5XxErrors": 2, "interval": "100ms", "baseEjectionTime": "60s",
                "maxEjectionPercent": 50}}),
            policy("active", healthCheck={"active": {
                "type": "HTTP", "interval": "100ms", "timeout": "100ms",
                "unhealthyThreshold": 1, "healthyThreshold": 1, "http": {"path": "/healthz"}}}),
            policy("tcp-connect", healthCheck={"active": {
                "type": "TCP", "interval": "100ms", "timeout": "100ms",
                "unhealthyThreshold": 1, "healthyThreshold": 1}}),
            policy("tcp-payload", healthCheck={"active": {
                "type": "TCP", "interval": "100ms", "timeout": "200ms",
                "unhealthyThreshold": 1, "healthyThreshold": 1, "tcp": {
                    # HTTP/1.1: the connection stays open, and Envoy reuses it for the next check
                    "send": {"type": "Text", "text": "GET /tcp-check HTTP/1.1\r\nHost: x\r\n\r\n"},
                    "receive": {"type": "Binary", "binary": "MjAwIE9L"}}}}),  # "200 OK"
            policy("fault", faultInjection={"abort": {"httpStatus": 418, "percentage": 30}}),
            policy("delay", faultInjection={"delay": {"fixedDelay": "500ms", "percentage": 100}}),
            policy("timeout", timeout={"http": {"requestTimeout": "300ms"}}),
            policy("limited", rateLimit={"type": "Local", "local": {"rules": [
                {"limit": {"requests": 3, "unit": "Minute"}}]}}),
        ],
    )  # fmt: skip
    with running_envoy(state) as ports:
        session = requests.Session()

        def get(host, **kwargs):
            headers = {"Host": host, **kwargs.pop("headers", {})}
            url = f"http://127.0.0.1:{ports[80]}/"
            return requests.get(url, headers=headers, timeout=10) if kwargs.pop(
                "fresh", False) else session.get(url, headers=headers, timeout=10)  # fmt: skip

        get.upstreams = {"good": good, "failing": failing, "slow": slow}
        yield get
    for upstream in (good, failing, slow, stranger):
        upstream.close()


def test_retries_reach_the_healthy_endpoint(gateway):
    plain = [gateway("plain.test").status_code for _ in range(20)]
    assert 503 in plain  # round robin sends half the requests to the dead endpoint...
    retried = [gateway("retry.test").status_code for _ in range(20)]
    assert retried == [200] * 20  # ...and the retry policy takes them to the live one


def test_the_circuit_breaker_overflows_with_503(gateway):
    def call(_):
        response = gateway("breaker.test", headers={"X-Delay-Ms": "600"}, fresh=True)
        return response.status_code, response.headers.get("x-envoy-overloaded")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    overflowed = [r for r in results if r[0] == 503]
    assert overflowed, results
    assert all(flag == "true" for _, flag in overflowed)  # Envoy's overflow marker
    assert (200, None) in results  # what fits in the limits is served


def test_outlier_detection_ejects_the_failing_endpoint(gateway):
    failing = gateway.upstreams["failing"]
    first = [gateway("outlier.test").status_code for _ in range(10)]
    assert 503 in first
    time.sleep(0.3)  # the detector runs every 100ms
    before = len(failing.requests)
    later = [gateway("outlier.test").status_code for _ in range(20)]
    assert later == [200] * 20
    assert len(failing.requests) == before


def test_active_health_checks_remove_a_dead_endpoint(gateway):
    good = gateway.upstreams["good"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the checker finds the dead endpoint within ~100ms
        if any(r["path"] == "/healthz" for r in good.requests):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    statuses = [gateway("active.test").status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert any(r["path"] == "/healthz" for r in good.requests)


def test_a_tcp_connect_check_removes_an_endpoint_that_refuses_connections(gateway):
    time.sleep(0.5)  # checks every 100 ms
    assert [gateway("tcp-connect.test").status_code for _ in range(20)] == [200] * 20
    # Without a check, round robin sends every other request to the dead endpoint.
    assert 503 in [gateway("plain.test").status_code for _ in range(10)]


def test_a_tcp_check_with_payloads_removes_an_endpoint_answering_something_else(gateway):
    good = gateway.upstreams["good"]
    deadline = time.monotonic() + 5
    while not any(r["path"] == "/tcp-check" for r in good.requests):  # what the check sent
        assert time.monotonic() < deadline, "no TCP health check reached the good endpoint"
        time.sleep(0.05)
    time.sleep(0.3)
    assert [gateway("tcp-payload.test").status_code for _ in range(20)] == [200] * 20
    # The stranger accepts connections: only the payload check tells it apart.
    assert {gateway("unchecked.test").status_code for _ in range(10)} != {200}


def test_faults_are_injected_at_the_configured_rate(gateway):
    n = 400
    codes = [gateway("fault.test").status_code for _ in range(n)]
    aborted = codes.count(418)
    assert set(codes) <= {200, 418}
    # 30% of 400: mean 120, standard deviation ~9.2; ±5 sigma never fails by chance.
    assert 74 <= aborted <= 166, aborted


def test_delays_are_injected(gateway):
    started = time.monotonic()
    response = gateway("delay.test")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.45  # 500ms, less timer granularity


def test_the_request_timeout_answers_504(gateway):
    started = time.monotonic()
    response = gateway("timeout.test", headers={"X-Delay-Ms": "2000"})
    assert response.status_code == 504
    assert time.monotonic() - started < 1.5
    assert gateway("timeout.test").status_code == 200


def test_the_local_rate_limit_answers_429_past_the_limit(gateway):
    codes = [gateway("limited.test").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert gateway("fault.test").status_code in (200, 418)  # other routes are not limited
