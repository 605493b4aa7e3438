"""Metering on the Kubernetes runtime, against the real ``xds_server`` process, the API server
double and real Envoys on enrolled bootstraps (a pod each): every answered request is counted
once, in the run of the pod that answered it, from the counters the pod pushes itself; a pod's
token writes only its own pod's run, and a call without one writes nothing."""

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import pytest
import requests
import yaml
from django.utils import timezone
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp

from billing import rollups
from billing.models import UsageHour
from gateways import services
from provisioning import tasks
from provisioning.metering import pod_incarnation
from provisioning.models import PodCredential, ReplicaIncarnation, UsageSample
from provisioning.reconcile import reconcile
from provisioning.runtimes.kubernetes import driver
from provisioning.translate.types import HCM, ROUTER
from provisioning.xds import metrics
from provisioning.xds.bootstrap import METERED_STATS, envoy_bootstrap, metrics_sink
from provisioning.xds.credentials import issue_replica_token
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import free_port
from tests.security.test_kubernetes_xds_credentials import (  # noqa: F401 (fixtures)
    double,
    enroll,
    gateways,
    target,
    xds,
    xds_token,
)
from tests.security.test_xds_credentials import stream
from tests.xds.harness import running_envoy, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
FLUSH = "0.5s"


@pytest.fixture(autouse=True)
def flush_often(monkeypatch):
    """The xDS server (started after this) renders pods' bootstraps flushing every 0.5 s, and
    stores a pod's pushes at most every 0.25 s."""
    monkeypatch.setenv("GANTRY_METERING_SECONDS", "0.5")


def route(path: str, **rule) -> dict:
    return {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}], **rule}]}


def pod_bootstrap(stack, gateway, pod: str) -> dict:
    """What the pod's init container writes, with the pod's own ports made free ones on this
    shared machine and a short flush interval."""
    answer = enroll(stack, gateway.key, pod, gateway.token(pod))
    bootstrap = yaml.safe_load(answer["bootstrap"])
    assert bootstrap["stats_flush_interval"] == FLUSH  # the server's GANTRY_METERING_SECONDS
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = free_port()
    probe = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]
    probe["port_value"] = free_port()
    return bootstrap


def send(url: str, rounds: int, sent: dict) -> None:
    for _ in range(rounds):
        for path, kind in (("/moved", "3xx"), ("/moved", "3xx"), ("/nowhere", "4xx"),
                           ("/fail", "5xx")):  # fmt: skip
            answer = requests.get(
                url + path, timeout=5, headers={"Connection": "close"}, allow_redirects=False
            )
            assert answer.status_code // 100 == int(kind[0]), (path, answer.status_code)
            sent[kind] += 1


def metered(incarnation) -> int:
    """Responses in the run's latest sample (cumulative)."""
    last = UsageSample.objects.filter(incarnation_id=incarnation).order_by("-seq").first()
    if last is None:
        return 0
    return sum(getattr(last, f"responses_{n}xx") for n in range(1, 6))


def status_of(url: str) -> int | None:
    try:
        answer = requests.get(url, timeout=5, headers={"Connection": "close"})
        return answer.status_code
    except requests.RequestException:
        return None


def pod_uid(api, pod: str) -> str:
    return api.objects[("Pod", "gantry-acme", pod)]["metadata"]["uid"]


def export(stack, request: otlp.ExportMetricsServiceRequest, token: str | None):
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(target(stack)) as channel:
        call = channel.unary_unary(
            metrics.FULL_METHOD,
            request_serializer=otlp.ExportMetricsServiceRequest.SerializeToString,
            response_deserializer=otlp.ExportMetricsServiceResponse.FromString,
        )
        return call(request, metadata=metadata, timeout=10)


def counter(name: str, value: int) -> otlp.ExportMetricsServiceRequest:
    request = otlp.ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().instrumentation_library_metrics.add().metrics.add()
    metric.name = name
    metric.sum.is_monotonic = True
    metric.sum.data_points.add().as_int = value
    return request


def test_pods_push_their_counters_and_each_pod_is_one_run(xds, gateways, double, monkeypatch):  # noqa: F811
    acme, globex = gateways
    # Answers Envoy gives itself (a pod's upstreams are out of reach here): a redirect, no
    # route, and a backend that does not exist (500, as the Gateway API asks).
    redirect = {"type": "RequestRedirect", "requestRedirect": {"path": {
        "type": "ReplaceFullPath", "replaceFullPath": "/elsewhere"}}}  # fmt: skip
    services.create_route(ACTOR, acme.row, "moved", route("/moved", filters=[redirect]))
    services.create_route(ACTOR, acme.row, "fail", route("/fail", backendRefs=[{"name": "gone"}]))
    assert reconcile(acme.row.pk).result in ("created", "updated")
    port = acme.row.spec["listeners"][0]["port"]
    url = f"http://127.0.0.1:{port}"
    sent = {"3xx": 0, "4xx": 0, "5xx": 0}

    first = acme.pod("envoy-edge-6f7c9-aaaaa")
    run_1 = pod_incarnation(pod_uid(double, first))
    with running_envoy(pod_bootstrap(xds, acme, first)):
        wait_for(lambda: status_of(url + "/fail") == 500, timeout=30, interval=0.1,
                 message="the routes served")  # fmt: skip
        sent["5xx"] += 1
        send(url, 3, sent)
        wait_for(lambda: metered(run_1) == sum(sent.values()), timeout=15, interval=0.1,
                 message=lambda: f"{metered(run_1)} of {sum(sent.values())} metered")  # fmt: skip
        # The xDS server is killed and started again: the pod reconnects, the same run goes on.
        before = UsageSample.objects.filter(incarnation_id=run_1).count()
        xds.xds.kill()
        send(url, 2, sent)  # served meanwhile, pushed after the reconnect
        xds.xds.start()
        xds.wait_for_xds()
        total_1 = sum(sent.values())
        wait_for(lambda: metered(run_1) == total_1, timeout=15, interval=0.1,
                 message=lambda: f"{metered(run_1)} of {total_1} metered")  # fmt: skip
        seqs = list(UsageSample.objects.filter(incarnation_id=run_1).values_list("seq", flat=True))
        assert len(seqs) > before and seqs == sorted(set(seqs)), seqs
    assert ReplicaIncarnation.objects.count() == 1, "one run, across the xDS server restart"
    run = ReplicaIncarnation.objects.get(id=run_1)
    assert (run.runtime, run.node_id, run.size) == ("kubernetes", f"acme/edge/{first}", "small")
    assert run.ready_at is not None and run.stopped_at is None

    # The pod is replaced by another (a new uid): a new run, counting from zero.
    double.delete("Pod", "gantry-acme", first)
    second = acme.pod("envoy-edge-6f7c9-bbbbb")
    run_2 = pod_incarnation(pod_uid(double, second))
    with running_envoy(pod_bootstrap(xds, acme, second)):
        wait_for(lambda: status_of(url + "/fail") == 500, timeout=30, interval=0.1,
                 message="the routes served")  # fmt: skip
        sent["5xx"] += 1
        send(url, 3, sent)
        total_2 = sum(sent.values()) - total_1
        wait_for(lambda: metered(run_2) == total_2, timeout=15, interval=0.1,
                 message=lambda: f"{metered(run_2)} of {total_2} metered")  # fmt: skip

        # The status sync sees the first pod gone: its run ends at its last flush.
        PodCredential.objects.filter(pod_name=first).update(
            issued_at=timezone.now() - timedelta(minutes=1)
        )
        acme.row.refresh_from_db()
        driver.converge(acme.row)
        gone = ReplicaIncarnation.objects.get(id=run_1)
        assert gone.stopped_at == gone.last_seen_at
        assert ReplicaIncarnation.objects.get(id=run_2).stopped_at is None

        # The gateway deleted while its pod still runs: the pod's run ends at its last flush.
        removals = []
        monkeypatch.setattr(tasks.remove_kubernetes_gateway, "apply_async",
                            lambda args, **kwargs: removals.append(args))  # fmt: skip
        services.delete_gateway(ACTOR, acme.row)
        assert ReplicaIncarnation.objects.get(id=run_2).stopped_at is None
        for args in removals:
            tasks.remove_kubernetes_gateway(*args)  # what the worker runs
        ended = ReplicaIncarnation.objects.get(id=run_2)
        assert (ended.stopped_at, ended.stop_reason) == (ended.last_seen_at, "deleted")

    assert metered(run_1) == total_1, "nothing of the second pod in the first pod's run"
    now = timezone.now()
    for _ in range(2):  # twice: the same rows
        rollups.rollup(now - timedelta(hours=2), now + timedelta(hours=1))
        usage = list(UsageHour.objects.filter(gateway_name="edge"))
        assert sum(row.requests for row in usage) == sum(sent.values())
        for kind, count in sent.items():
            assert sum(getattr(row, f"responses_{kind}") for row in usage) == count
        assert all(row.bytes_received > 0 and row.bytes_sent > 0 for row in usage)
        assert sum(sum(row.latency.values()) for row in usage) == sum(sent.values())


def test_a_pods_token_writes_only_its_own_run_and_nothing_else_writes(xds, gateways, double):  # noqa: F811
    acme, globex = gateways
    pod = acme.pod("envoy-edge-6f7c9-aaaaa")
    token = xds_token(enroll(xds, acme.key, pod, acme.token(pod)))
    web = globex.pod("envoy-web-5d4b8-ccccc")
    web_token = xds_token(enroll(xds, globex.key, web, globex.token(web)))
    web_port = globex.row.spec["listeners"][0]["port"]
    acme_port = acme.row.spec["listeners"][0]["port"]

    # Another gateway's counters in acme's pod's message: read as nobody's.
    export(xds, counter(f"http.globex.web.port.{web_port}.downstream_rq_2xx", 1000), token)
    assert not ReplicaIncarnation.objects.filter(gateway_name="web").exists()
    own = ReplicaIncarnation.objects.get(gateway_name="edge")
    assert own.id == pod_incarnation(pod_uid(double, pod))
    assert not UsageSample.objects.exists()
    # Its own counters go to its own run only.
    time.sleep(0.3)  # pushes come one flush apart (faster ones are dropped unread)
    export(xds, counter(f"http.acme.edge.port.{acme_port}.downstream_rq_2xx", 7), token)
    assert [(s.incarnation_id, s.responses_2xx) for s in UsageSample.objects.all()] == [(own.id, 7)]
    # Refused, and nothing written: no token, an unknown one, a local replica's, a revoked one.
    forged = counter(f"http.globex.web.port.{web_port}.downstream_rq_2xx", 5)
    replica = issue_replica_token(globex.row, 0)
    for bad in (None, "gxds_abcdefgh_" + "x" * 43, "not-a-token", replica):
        with pytest.raises(grpc.RpcError) as caught:
            export(xds, forged, bad)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, bad
    PodCredential.objects.filter(pod_name=web).delete()
    with pytest.raises(grpc.RpcError) as caught:
        export(xds, forged, web_token)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not ReplicaIncarnation.objects.filter(gateway_name="web").exists()
    assert UsageSample.objects.count() == 1


def test_the_pods_stats_sink_sends_only_the_metered_stats_with_its_token(tmp_path):
    """The sink of the pods' bootstrap, in a real Envoy, against a plain collector: each flush
    carries the pod's token and the listener's metered stats, and nothing else of Envoy's."""
    received: list[tuple[list[str], str]] = []

    def collect(request, context):
        names = [
            metric.name
            for resource in request.resource_metrics
            for scope in resource.instrumentation_library_metrics
            for metric in scope.metrics
        ]
        received.append((names, dict(context.invocation_metadata()).get("authorization")))
        return otlp.ExportMetricsServiceResponse()

    method = grpc.unary_unary_rpc_method_handler(
        collect,
        request_deserializer=otlp.ExportMetricsServiceRequest.FromString,
        response_serializer=otlp.ExportMetricsServiceResponse.SerializeToString,
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(metrics.SERVICE, {metrics.METHOD: method}),)
    )
    collector_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port, token = free_port(), "gxds_abcdefgh_" + "x" * 43
    manager = {
        "@type": HCM,
        "stat_prefix": f"acme.edge.port.{port}",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 204}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }  # fmt: skip
    bootstrap = envoy_bootstrap(gateway_key="acme/edge", replica="p", token=token,
                                xds_address="127.0.0.1", xds_port=collector_port,
                                admin_port=free_port())  # fmt: skip
    bootstrap.pop("dynamic_resources")  # no ADS here: a static listener
    bootstrap["static_resources"]["listeners"] = [{
        "name": "http",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "hcm", "typed_config": manager}]}],
    }]  # fmt: skip
    bootstrap["stats_sinks"] = [metrics_sink(token)]
    bootstrap["stats_flush_interval"] = FLUSH
    try:
        with running_envoy(bootstrap, wait_ready=False):
            wait_for(lambda: status_of(f"http://127.0.0.1:{port}/") == 204, timeout=20,
                     interval=0.1, message="the listener")  # fmt: skip
            wait_for(lambda: any(names for names, _ in received), timeout=10, interval=0.1,
                     message="a flush with the listener's stats")  # fmt: skip
    finally:
        server.stop(0)
    assert {auth for _, auth in received} == {f"Bearer {token}"}
    sent = {name for names, _ in received for name in names}
    prefix = f"http.acme.edge.port.{port}."
    assert sent >= {prefix + "downstream_rq_2xx", prefix + "downstream_rq_time"}
    assert all(re.match(METERED_STATS, name) for name in sent), sent


def test_a_pods_run_opens_at_its_first_xds_stream_not_at_enrollment(xds, gateways, double):  # noqa: F811
    acme, _ = gateways
    pod = acme.pod("envoy-edge-6f7c9-aaaaa")
    token = xds_token(enroll(xds, acme.key, pod, acme.token(pod)))
    assert not ReplicaIncarnation.objects.exists()  # enrolled, not yet running
    assert stream(target(xds), token, f"acme/edge/{pod}") == "served"
    run = wait_for(lambda: ReplicaIncarnation.objects.filter(gateway_name="edge").first(),
                   timeout=10, interval=0.05, message="the pod's run")  # fmt: skip
    assert run.id == pod_incarnation(pod_uid(double, pod))
    assert (run.runtime, run.node_id, run.stopped_at) == ("kubernetes", f"acme/edge/{pod}", None)
    assert run.ready_at is not None and not UsageSample.objects.exists()
    # Its stream again (a reconnect, or another xDS server): the same run, not a second one.
    assert stream(target(xds), token, f"acme/edge/{pod}") == "served"
    assert list(ReplicaIncarnation.objects.values_list("id", flat=True)) == [run.id]


class FakeContext:
    def __init__(self, token: str | None):
        self.token = token

    def invocation_metadata(self):
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def peer(self):
        return "ipv4:10.0.0.7:40000"

    async def abort(self, code, message):
        raise grpc.RpcError(code, message)


class Database:
    """Stands in for the database threads: records what would be stored."""

    def __init__(self):
        self.calls = []

    async def run(self, function, *args):
        self.calls.append(args)


def test_a_pod_pushing_too_fast_has_its_extra_pushes_dropped_unread():
    now = [0.0]
    database = Database()
    service = metrics.MetricsService(database, min_interval=5, clock=lambda: now[0])
    request = otlp.ExportMetricsServiceRequest()

    def push(token):
        return asyncio.run(service.Export(request, FakeContext(token)))

    for _ in range(50):
        push("gxds_aaaaaaaa_" + "a" * 43)
    push("gxds_bbbbbbbb_" + "b" * 43)  # another pod is not held up
    assert len(database.calls) == 2
    now[0] += 5
    push("gxds_aaaaaaaa_" + "a" * 43)
    assert len(database.calls) == 3
