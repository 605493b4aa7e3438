"""End to end: a real Envoy on the real xDS server (database source, Redis notifications), the
discovery watcher following the API-server double, real HTTP servers on 127.0.0.1 standing for
pods. While a client sends requests without pause, pods come and go ten times (a new pod is
added, the old one is marked terminating, then removed and stopped): no request fails, every
pod is reached, and no config revision is made (endpoint changes never recompile)."""

import threading
import time

import pytest
import requests
from django.conf import settings

from gateways import services
from provisioning import tasks
from provisioning.discovery.watcher import DiscoveryWatcher
from provisioning.models import ConfigRevision, DiscoveredEndpoints, LocalPort, ReplicaStatus
from provisioning.reconcile import reconcile
from provisioning.translate.types import CLUSTER_LOAD_ASSIGNMENT
from provisioning.xds.credentials import issue_replica_token
from tests.discovery.conftest import ACTOR
from tests.discovery.test_watcher import endpoint_slice, kubeconfig, service
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.provisioning.harness import Upstream
from tests.xds.harness import LoopThread, running_envoy, wait_for
from tests.xds.test_db_envoy import DatabaseXds

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NODE = "acme/edge/0"
CHURNS = 10


class Client(threading.Thread):
    """Requests back to back through the gateway; counts answers by status and pod."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.statuses: dict[int, int] = {}
        self.pods: dict[str, int] = {}
        self.failures: list[str] = []
        self.last = ""

    def run(self):
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                response = session.get(f"http://127.0.0.1:{self.port}/", timeout=5)
            except requests.RequestException as error:
                self.failures.append(repr(error))
                continue
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                self.last = response.json()["backend"]
                self.pods[self.last] = self.pods.get(self.last, 0) + 1
            else:
                self.failures.append(f"{response.status_code} {response.text[:200]}")

    def count(self, pod: str) -> int:
        return self.pods.get(pod, 0)


@pytest.fixture
def loop_thread():
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    server.upsert({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    server.upsert(service())
    yield server
    server.stop()


@pytest.fixture
def gateway(org, granted, double, monkeypatch):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    for cluster in granted.values():
        cluster.kubeconfig = kubeconfig(double.host)
        cluster.save()
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    spec = {"kubernetesService": {"namespace": "shop", "name": "cart", "port": 80}}
    services.create_backend(ACTOR, org.tenant, "cart", spec)
    services.create_route(ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "cart"}]}]})
    assert reconcile(gateway.pk).result == "created"
    gateway.port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port
    return gateway


def pod_slice(pod: Upstream, **conditions) -> dict:
    return endpoint_slice(f"cart-{pod.name}", ["127.0.0.1"], port=pod.port, **conditions)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
@pytest.mark.parametrize("api_type", ["DELTA_GRPC", "GRPC"])
def test_pods_come_and_go_under_traffic_without_a_failed_request(
    loop_thread, gateway, double, api_type
):
    pods = [Upstream(f"pod-{i}") for i in range(CHURNS + 1)]
    for pod in pods:
        pod.server.RequestHandlerClass.disable_nagle_algorithm = True
    double.upsert(pod_slice(pods[0]))
    watcher = DiscoveryWatcher(refresh=0.2, watch_seconds=5)
    xds = DatabaseXds(loop_thread, settings.REDIS_URL, poll_interval=5)
    xds.start()
    client = None
    try:
        watcher.refresh_once()
        wait_for(lambda: DiscoveredEndpoints.objects.exists(), message="the first rows")
        token = issue_replica_token(gateway, 0)
        with running_envoy(xds.bootstrap(token, api_type)):
            client = Client(gateway.port)
            client.start()
            wait_for(lambda: client.count("pod-0") > 0, message="pod-0 answering")
            timings = []
            for i in range(CHURNS):
                old, new = pods[i], pods[i + 1]
                start = time.perf_counter()
                double.upsert(pod_slice(new))  # a new pod is ready
                wait_for(lambda n=new.name: client.count(n) > 0, message=f"{new.name} reached")
                timings.append(time.perf_counter() - start)
                # the old pod terminates: it still serves what it has, gets nothing new
                double.upsert(pod_slice(old, ready=False, serving=True, terminating=True))
                seen = client.count(old.name)
                wait_for(lambda o=old.name, s=seen: _stopped_reaching(client, o, s),
                         message=f"{old.name} drained")  # fmt: skip
                double.remove("EndpointSlice", "shop", f"cart-{old.name}")  # the pod is gone
                time.sleep(0.3)
                old.close()
            client.stopping.set()
            client.join(10)
            assert client.failures == [], client.failures[:5]
            assert set(client.statuses) == {200}, client.statuses
            assert {f"pod-{i}" for i in range(CHURNS + 1)} <= set(client.pods)
            assert client.last == f"pod-{CHURNS}"
            # endpoints changed 3 × 10 times: no revision, nothing to compile
            assert ConfigRevision.objects.filter(gateway=gateway).count() == 1
            assert reconcile(gateway.pk).result == "unchanged"
            revision = ConfigRevision.objects.get(gateway=gateway)
            assert ReplicaStatus.objects.filter(
                node_id=NODE, type_url=CLUSTER_LOAD_ASSIGNMENT, acked_version=revision.content_hash
            ).exists()
            median = 1000 * sorted(timings)[len(timings) // 2]
            print(f"\n{api_type}: a new pod reached in {median:.0f} ms (median), "
                  f"{1000 * max(timings):.0f} ms at most; "
                  f"{sum(client.statuses.values())} requests")  # fmt: skip
    finally:
        if client is not None:
            client.stopping.set()
        watcher.stop()
        xds.stop()
        for pod in pods[CHURNS:]:
            pod.close()


def _stopped_reaching(client: Client, pod: str, seen: int) -> bool:
    """No request reached ``pod`` for a while (its DRAINING status was applied)."""
    count = client.count(pod)
    time.sleep(0.2)
    return client.count(pod) == count and client.last != pod


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
def test_a_revoked_grant_withdraws_the_endpoints_and_a_deleted_service_answers_503(
    loop_thread, gateway, double, org
):
    from provisioning.discovery import grants
    from provisioning.models import DiscoveryGrant

    pod = Upstream("pod-a")
    double.upsert(pod_slice(pod))
    watcher = DiscoveryWatcher(refresh=0.2, watch_seconds=5)
    xds = DatabaseXds(loop_thread, settings.REDIS_URL, poll_interval=5)
    xds.start()
    try:
        watcher.refresh_once()
        wait_for(lambda: DiscoveredEndpoints.objects.exists(), message="the first rows")
        with running_envoy(xds.bootstrap(issue_replica_token(gateway, 0))):
            url = f"http://127.0.0.1:{gateway.port}/"
            wait_for(lambda: requests.get(url, timeout=5).status_code == 200, message="served")
            # the Service is deleted: no endpoints, 503
            double.remove("Service", "shop", "cart")
            double.remove("EndpointSlice", "shop", "cart-pod-a")
            wait_for(lambda: requests.get(url, timeout=5).status_code == 503, message="503")
            double.upsert(service())
            double.upsert(pod_slice(pod))
            watcher.watches[next(iter(watcher.watches))]._write()  # Service read again at once
            wait_for(lambda: requests.get(url, timeout=5).status_code == 200, timeout=15,
                     message="served again")  # fmt: skip
            # the operator revokes the grant: withdrawn at once, by notification
            grant = DiscoveryGrant.objects.get(tenant=org.tenant, cluster__name="prod",
                                               namespace="shop")  # fmt: skip
            grants.revoke_grant(ACTOR, grant)
            wait_for(lambda: requests.get(url, timeout=5).status_code == 503, timeout=3,
                     message="withdrawn")  # fmt: skip
            assert ConfigRevision.objects.filter(gateway=gateway).count() == 1
    finally:
        watcher.stop()
        xds.stop()
        pod.close()
