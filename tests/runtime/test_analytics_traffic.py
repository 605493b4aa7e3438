"""Analytics with a real Envoy replica of the local runtime: requests over two routes, by two
consumers (API keys) and none, with mixed statuses, go through; the agent reads the access log
into the database, the rollup runs, and the metrics API counts each route and consumer exactly
(and the backend's time as the upstream latency)."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from billing import analytics
from gateways import services
from gateways.models import Gateway
from provisioning.models import AccessLogEntry, LocalReplica
from provisioning.reconcile import reconcile
from tenants.roles import Role
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import Upstream
from tests.runtime.stack import Stack
from tests.runtime.test_access_logs import route, status_of
from tests.xds.harness import wait_for


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_per_route_and_consumer_count_real_traffic_exactly(tmp_path):
    app, broken = Upstream("app"), Upstream("broken", status=503)
    stack = Stack(tmp_path)
    stack.env["GANTRY_ACCESS_LOG_SECONDS"] = "0.2"
    stack.start()
    try:
        org = make_org("acme")
        other = make_org("globex")
        gateway = services.create_gateway(ACTOR, org.tenant, "edge", {"replicas": 1})
        services.create_backend(ACTOR, org.tenant, "app", app.backend())
        services.create_backend(ACTOR, org.tenant, "broken", broken.backend())
        services.create_route(ACTOR, gateway, "keys", route("/keys"))
        flaky = route("/flaky")
        flaky["rules"][0]["backendRefs"] = [{"name": "broken"}]
        services.create_route(ACTOR, gateway, "flaky", flaky)
        keys = {}
        for name in ("alice", "bob"):
            consumer = services.create_consumer(ACTOR, org.tenant, name, {})
            keys[name] = services.create_credential(ACTOR, consumer, {"type": "api-key"})[1]
        target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "keys"}
        services.create_policy(ACTOR, gateway, "keys", "SecurityPolicy", {
            "targetRefs": [target],
            "apiKeyAuth": {"credentialRefs": [{"kind": "Consumer", "name": "alice"},
                                              {"kind": "Consumer", "name": "bob"}],
                           "extractFrom": [{"params": ["apikey"]}]},
        })  # fmt: skip
        assert reconcile(gateway.pk).result == "created"
        wait_for(
            lambda: LocalReplica.objects.filter(gateway=gateway, state="running").exists(),
            timeout=60, interval=0.1, message=lambda: f"a replica running\n{stack.logs()}",
        )  # fmt: skip
        url = Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"].rstrip("/")
        wait_for(lambda: status_of(f"{url}/keys/x?apikey={keys['alice']}") == 200, timeout=30,
                 interval=0.1, message="the routes served")  # fmt: skip
        started = timezone.now()

        slow = {"X-Delay-Ms": "120"}
        sent = [
            requests.get(f"{url}/keys/a?apikey={keys['alice']}", headers=slow, timeout=5),
            requests.get(f"{url}/keys/b?apikey={keys['alice']}", timeout=5),
            requests.get(f"{url}/keys/c?apikey={keys['alice']}", timeout=5),
            requests.get(f"{url}/keys/d?apikey={keys['bob']}", timeout=5),
            requests.get(f"{url}/keys/e?apikey={keys['bob']}", timeout=5),
            requests.get(f"{url}/keys/f?apikey=wrong", timeout=5),
            requests.get(f"{url}/flaky/1", timeout=5),
            requests.get(f"{url}/flaky/2", timeout=5),
            requests.get(f"{url}/nowhere", timeout=5),
        ]
        assert [r.status_code for r in sent] == [200] * 5 + [401, 503, 503, 404]
        paths = [r.request.path_url.split("?")[0] for r in sent]
        ours = AccessLogEntry.objects.filter(path__in=paths)
        wait_for(lambda: ours.count() == len(sent), timeout=20, interval=0.1,
                 message=lambda: f"the entries stored\n{stack.logs()}")  # fmt: skip
        AccessLogEntry.objects.exclude(path__in=paths).delete()  # the readiness probes
    finally:
        stack.stop()
        app.close()
        broken.close()

    analytics.rollup_recent()
    analytics.rollup_recent()  # twice: the same rows

    def points(tenant_org=org, **params):
        window = {"from": (started - timedelta(minutes=2)).isoformat(), "step": "5m"}
        answer = tenant_org.client(Role.VIEWER).get(
            f"/api/v1/tenants/{org.tenant.slug}/gateways/edge/metrics/", {**window, **params}
        )
        assert answer.status_code == 200, answer.content
        return answer.json()["points"]

    def total(found, key=None):
        return sum(p["responses"][key] if key else p["requests"] for p in found)

    keyed = points(route="keys")
    assert (total(keyed), total(keyed, "2xx"), total(keyed, "4xx")) == (6, 5, 1)
    assert (total(points(consumer="alice")), total(points(consumer="bob"))) == (3, 2)
    assert total(points(route="keys", consumer="bob"), "2xx") == 2
    flaky_points = points(route="flaky")
    assert (total(flaky_points), total(flaky_points, "5xx")) == (2, 2)
    assert [p["errorRate"] for p in flaky_points if p["requests"]] == [1.0]
    assert total(points(route=""), "4xx") == 1  # no route matched
    assert total(points(consumer=""), "4xx") == 2  # the refused key and the unrouted request
    assert total(points(route="nope")) == 0
    alice = [p for p in points(consumer="alice") if p["requests"]]
    assert alice[0]["upstreamLatencyMs"]["p99"] >= 120  # the slow request's backend time
    assert alice[0]["latencyMs"]["p99"] >= alice[0]["upstreamLatencyMs"]["p99"] * 0.9

    stranger = other.client(Role.OWNER).get(
        f"/api/v1/tenants/{org.tenant.slug}/gateways/edge/metrics/", {"route": "keys"}
    )
    assert stranger.status_code == 404
