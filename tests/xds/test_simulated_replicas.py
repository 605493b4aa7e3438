"""The simulated replicas of the load benchmark (``bench/xds_client.py``) against the real xDS
server: they subscribe, receive and ACK like an Envoy does, so the server records their ACKs
and receipts as it does a real Envoy's, and they receive a change like one."""

import asyncio

import pytest
from django.conf import settings
from grpc import aio

from bench.xds_client import CLUSTER, LISTENER, ROUTES, VHOSTS, Replica, run
from gateways import services
from gateways.models import Route
from provisioning.models import ConfigRevision, ReplicaReceipt, ReplicaStatus
from provisioning.reconcile import reconcile
from provisioning.xds.credentials import issue_replica_token
from tests.delivery.helpers import ACTOR
from tests.xds.harness import wait_for
from tests.xds.test_db_envoy import gateway, route_to, serve  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
def test_a_simulated_replica_is_served_and_acks_like_an_envoy(loop_thread, gateway):  # noqa: F811
    xds = serve(loop_thread, settings.REDIS_URL, poll_interval=60)
    replica = Replica("acme/edge", 0, issue_replica_token(gateway, 0), ("acme/edge/port/80",))
    stop = {}

    async def start():
        stop["event"] = asyncio.Event()
        channel = aio.insecure_channel(f"127.0.0.1:{xds.server.port}")
        stop["channel"] = channel
        stop["task"] = asyncio.ensure_future(run(channel, replica, stop["event"]))

    async def finish():
        stop["event"].set()
        await stop["task"]
        await stop["channel"].close()

    try:
        loop_thread.run(start())
        first = ConfigRevision.objects.get(gateway=gateway, current=True)
        wait_for(lambda: all(replica.version(t) == first.content_hash
                             for t in (CLUSTER, LISTENER, ROUTES, VHOSTS)),
                 message="every type at revision 1")  # fmt: skip
        assert replica.names[ROUTES] == {"acme/edge/port/80"}
        assert replica.names[VHOSTS] == {"acme/edge/port/80/x.test"}
        assert "acme/edge/port/80" in replica.names[LISTENER]
        version = first.content_hash
        acked = ReplicaStatus.objects.filter(node_id="acme/edge/0", acked_version=version)
        wait_for(lambda: acked.count() == 4, message="the server recorded its ACKs")
        wait_for(lambda: ReplicaReceipt.objects.filter(revision=first).exists(), message="receipt")
        services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_to("b"))
        second = reconcile(gateway.pk).revision
        wait_for(lambda: replica.version(VHOSTS) == second.content_hash, message="the change")
        wait_for(lambda: ReplicaReceipt.objects.filter(revision=second).exists(), message="2nd")
        loop_thread.run(finish())
    finally:
        xds.stop()
    assert replica.error == ""
