"""The xDS server's database source with EDS: assignments from the rows, the grants and the
egress policy at each read; an endpoint change is a new snapshot of the same revision; a
forged EndpointSlice pointing at the platform reaches no Envoy."""

import pytest
from django.conf import settings

from gateways import services
from gateways.models import Gateway
from provisioning import tasks
from provisioning.discovery import endpoints, grants
from provisioning.models import ConfigRevision, DiscoveryGrant
from provisioning.reconcile import reconcile
from provisioning.translate.types import CLUSTER_LOAD_ASSIGNMENT
from provisioning.xds.db_source import DatabaseSnapshotSource
from provisioning.xds.resources import message_class
from tests.discovery.conftest import ACTOR
from tests.xds.harness import LoopThread

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "acme/edge"


def ready(address, port):
    return {"address": address, "port": port, "ready": True, "serving": True,
            "terminating": False}  # fmt: skip


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def gateway(org, granted, monkeypatch):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    spec = {"kubernetesService": {"namespace": "shop", "name": "cart", "port": 80}}
    services.create_backend(ACTOR, org.tenant, "cart", spec)
    services.create_route(ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "cart"}]}]})
    reconcile(gateway.pk)
    return gateway


def served(snapshot) -> list[tuple[str, int]]:
    (encoded,) = snapshot.resources[CLUSTER_LOAD_ASSIGNMENT].values()
    assignment = message_class(CLUSTER_LOAD_ASSIGNMENT)()
    encoded.body.Unpack(assignment)
    sockets = [lb.endpoint.address.socket_address
               for group in assignment.endpoints for lb in group.lb_endpoints]  # fmt: skip
    return [(socket.address, socket.port_value) for socket in sockets]


def test_assignments_follow_rows_and_grants_without_a_revision(loop, gateway, granted, org):
    prod = granted["prod"]
    forged = [ready("10.1.0.1", 8080), ready("127.0.0.1", settings.GANTRY_PORT),
              ready("127.0.0.1", settings.GANTRY_XDS_PORT), ready("169.254.169.254", 80),
              ready("100.100.100.200", 80)]  # fmt: skip
    endpoints.store(prod, "shop", "cart", 80, forged)
    source = DatabaseSnapshotSource(poll_interval=0.1, redis_url=None)
    try:
        first = loop.run(source.watch(KEY, None))
        assert served(first) == [("10.1.0.1", 8080)]  # the platform's ports, metadata: dropped
        revision = ConfigRevision.objects.get(gateway=gateway, current=True)
        assert first.version == revision.content_hash

        endpoints.store(
            prod, "shop", "cart", 80, [ready("10.1.0.1", 8080), ready("10.1.0.2", 8080)]
        )
        second = loop.run(source.watch(KEY, first.key))
        assert second.version == first.version and second.key != first.key
        assert served(second) == [("10.1.0.1", 8080), ("10.1.0.2", 8080)]
        assert (
            second.resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"]
            is (first.resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"])
        )  # nothing but the assignments was encoded again

        # on Kubernetes a pod's loopback is its own Envoy: refused even where loopback is allowed
        endpoints.store(prod, "shop", "cart", 80, [ready("127.0.0.1", 9000)])
        third = loop.run(source.watch(KEY, second.key))
        assert served(third) == [("127.0.0.1", 9000)]  # local runtime, loopback allowed in tests
        Gateway.objects.filter(pk=gateway.pk).update(spec={**gateway.spec, "runtime": "kubernetes"})
        fourth = loop.run(source.watch(KEY, third.key))
        assert served(fourth) == []

        Gateway.objects.filter(pk=gateway.pk).update(spec=gateway.spec)
        fifth = loop.run(source.watch(KEY, fourth.key))
        assert served(fifth) == [("127.0.0.1", 9000)]
        grants.revoke_grant(ACTOR, DiscoveryGrant.objects.get(tenant=org.tenant, cluster=prod))
        assert served(loop.run(source.watch(KEY, fifth.key))) == []
        assert ConfigRevision.objects.filter(gateway=gateway).count() == 1
    finally:
        loop.run(source.close())


def test_another_tenants_rows_are_not_served_without_its_own_grant(
    loop, gateway, other_org, granted
):
    """globex names the same Service while only acme holds prod/shop: globex cannot even write
    the backend; a globex backend stored before (a grant since removed) gets nothing."""
    other = services.create_gateway(ACTOR, other_org.tenant, "edge", {})
    prod = granted["prod"]
    grants.grant_namespace(ACTOR, prod, other_org.tenant, "shop")
    spec = {"kubernetesService": {"namespace": "shop", "name": "cart", "port": 80}}
    services.create_backend(ACTOR, other_org.tenant, "cart", spec)
    services.create_route(ACTOR, other, "all", {"rules": [{"backendRefs": [{"name": "cart"}]}]})
    reconcile(other.pk)
    grants.revoke_grant(
        ACTOR, DiscoveryGrant.objects.get(tenant=other_org.tenant, namespace="shop")
    )
    endpoints.store(prod, "shop", "cart", 80, [ready("10.1.0.1", 8080)])
    source = DatabaseSnapshotSource(poll_interval=0.1, redis_url=None)
    try:
        assert served(loop.run(source.watch("globex/edge", None))) == []
        assert served(loop.run(source.watch(KEY, None))) == [("10.1.0.1", 8080)]
    finally:
        loop.run(source.close())
