"""Global rate limits through real Envoy: two replicas of one gateway (two Envoy processes on
the same compiled config) ask the real rate limit service (``manage.py ratelimit_server``,
counting in the real Redis). The limit holds across the replicas exactly; selectors, shared
counts and ``x-ratelimit-*`` headers; Redis or the service down → the policy's failure mode."""

import http.client
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from provisioning.compile import rate_limit_service
from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, free_port, running_envoy
from tests.ratelimit.service import start_service

pytestmark = pytest.mark.slow
HOUR = 3600


def avoid_window_edge(window: int = HOUR, margin: float = 20) -> None:
    """Counts are per fixed window: a test must not straddle two."""
    left = window - time.time() % window
    if left < margin:
        time.sleep(left + 0.1)


def route(name):
    return {"name": name, "spec": {"hostnames": [f"{name}.test"],
                                   "rules": [{"backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def limits(names, *rules, fail_closed=None):
    refs = [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
            for name in names]  # fmt: skip
    rate_limit = {"type": "Global", "global": {"rules": list(rules)}}
    if fail_closed is not None:
        rate_limit["failClosed"] = fail_closed
    return {"name": f"limits-{names[0]}", "kind": "BackendTrafficPolicy",
            "spec": {"targetRefs": refs, "rateLimit": rate_limit}}  # fmt: skip


def rule(requests, *selectors, shared=None):
    found = {"limit": {"requests": requests, "unit": "Hour"}}
    if selectors:
        found["clientSelectors"] = list(selectors)
    if shared is not None:
        found["shared"] = shared
    return found


def state_for(gateway: str, app: Upstream) -> DesiredState:
    names = ("shared", "users", "cidrs", "together-a", "together-b", "apart-a", "apart-b",
             "open", "closed")  # fmt: skip
    return DesiredState(
        tenant="acme", gateway=gateway,
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[route(name) for name in names],
        backends={"app": app.backend()},
        policies=[
            limits(["shared"], rule(10)),
            limits(["users"], rule(3, {"headers": [{"name": "x-user", "type": "Distinct"}]})),
            limits(["cidrs"], rule(2, {"sourceCIDR": {"value": "127.0.0.2/32"}})),
            limits(["together-a", "together-b"], rule(4, shared=True)),
            limits(["apart-a", "apart-b"], rule(2)),
            limits(["open"], rule(100)),
            limits(["closed"], rule(100), fail_closed=True),
        ],
    )  # fmt: skip


class Replica:
    def __init__(self, port: int):
        self.port = port

    def get(self, host: str, source: str = "127.0.0.1", **headers):
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10, source_address=(source, 0)
        )
        try:
            connection.request("GET", "/", headers={"Host": host, **headers})
            response = connection.getresponse()
            response.read()
            return response
        finally:
            connection.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    process = start_service(tmp_path_factory.mktemp("ratelimit"))
    yield process
    assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def replicas(service):
    """Two Envoys of one gateway (its own name: counts never meet another test's)."""
    app = Upstream("app")
    state = state_for(f"edge-{uuid.uuid4().hex[:8]}", app)
    rate_limit = rate_limit_service(f"acme/{state.gateway}", "127.0.0.1")
    rate_limit = type(rate_limit)(rate_limit.host, service.port, rate_limit.token, 500)
    with running_envoy(state, rate_limit=rate_limit) as one, \
            running_envoy(state, rate_limit=rate_limit) as two:  # fmt: skip
        yield Replica(one[80]), Replica(two[80])
    app.close()


def spread(replicas, count: int, host: str, **headers) -> list[int]:
    """``count`` requests at once, alternating between the replicas."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(replicas[i % 2].get, host, **headers) for i in range(count)]
        return [future.result().status for future in futures]


def test_the_limit_is_shared_by_every_replica_exactly(replicas):
    avoid_window_edge()
    statuses = spread(replicas, 30, "shared.test")
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 20
    # Each replica alone is refused now too: the count is the gateway's, not the replica's.
    assert [replica.get("shared.test").status for replica in replicas] == [429, 429]


def test_answers_carry_the_shared_counts_in_rate_limit_headers(replicas):
    avoid_window_edge()
    first = replicas[0].get("users.test", **{"x-user": "ann"})
    second = replicas[1].get("users.test", **{"x-user": "ann"})
    assert (first.status, second.status) == (200, 200)
    assert first.getheader("x-ratelimit-limit").startswith("3")
    assert first.getheader("x-ratelimit-remaining") == "2"
    assert second.getheader("x-ratelimit-remaining") == "1"
    replicas[0].get("users.test", **{"x-user": "ann"})
    refused = replicas[1].get("users.test", **{"x-user": "ann"})
    assert refused.status == 429
    assert refused.getheader("x-ratelimit-remaining") == "0"
    assert 0 < int(refused.getheader("x-ratelimit-reset")) <= HOUR


def test_each_distinct_value_has_its_own_count_and_unselected_requests_none(replicas):
    avoid_window_edge()
    assert spread(replicas, 4, "users.test", **{"x-user": "bea"}).count(200) == 3
    assert spread(replicas, 4, "users.test", **{"x-user": "cid"}).count(200) == 3
    assert spread(replicas, 6, "users.test") == [200] * 6  # no x-user: the rule does not count


def test_a_source_cidr_selects_clients_by_address(replicas):
    avoid_window_edge()
    inside = [replicas[i % 2].get("cidrs.test", source="127.0.0.2").status for i in range(4)]
    assert inside == [200, 200, 429, 429]
    outside = [replicas[i % 2].get("cidrs.test", source="127.0.0.3").status for i in range(4)]
    assert outside == [200] * 4


def test_shared_rules_count_once_for_every_route_of_the_policy(replicas):
    avoid_window_edge()
    together = [replicas[0].get("together-a.test").status for _ in range(2)]
    together += [replicas[1].get("together-b.test").status for _ in range(3)]
    assert together == [200, 200, 200, 200, 429]
    apart = [replicas[0].get("apart-a.test").status for _ in range(3)]
    apart += [replicas[1].get("apart-b.test").status for _ in range(3)]
    assert apart == [200, 200, 429, 200, 200, 429]  # one count per route


def _gateway_on(service_port: int, tmp_suffix: str):
    app = Upstream("app")
    state = state_for(f"down-{tmp_suffix}-{uuid.uuid4().hex[:6]}", app)
    base = rate_limit_service(f"acme/{state.gateway}", "127.0.0.1")
    return app, state, type(base)(base.host, service_port, base.token, 500)


def test_redis_down_lets_fail_open_routes_through_and_refuses_fail_closed_ones(tmp_path):
    dead = free_port()  # nothing listens there: Redis is down for this service
    service = start_service(tmp_path, redis_url=f"redis://127.0.0.1:{dead}/0")
    try:
        app, state, rate_limit = _gateway_on(service.port, "redis")
        with running_envoy(state, rate_limit=rate_limit) as ports:
            replica = Replica(ports[80])
            assert [replica.get("open.test").status for _ in range(3)] == [200] * 3
            assert [replica.get("closed.test").status for _ in range(3)] == [503] * 3
        app.close()
    finally:
        service.stop()
    assert "counters unavailable" in service.output()


def test_the_service_down_lets_fail_open_routes_through_and_refuses_fail_closed_ones(tmp_path):
    service = start_service(tmp_path)
    app, state, rate_limit = _gateway_on(service.port, "service")
    try:
        with running_envoy(state, rate_limit=rate_limit) as ports:
            replica = Replica(ports[80])
            assert replica.get("closed.test").status == 200  # while it runs
            service.kill()
            assert [replica.get("open.test").status for _ in range(3)] == [200] * 3
            assert [replica.get("closed.test").status for _ in range(3)] == [503] * 3
    finally:
        service.stop()
        app.close()


def test_counts_are_kept_in_redis_under_the_platforms_prefix(replicas):
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{settings.CACHE_KEY_PREFIX}:rl:*", count=1000))
    assert keys, "no counter in Redis"
    assert all(0 < client.ttl(key) <= 2 * HOUR for key in keys)
