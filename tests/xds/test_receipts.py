"""Receipts, not claims: each replica's application of a revision, recorded by the real xDS
server from real Envoys' ACKs and shown in the API as ``applied 2/2 in N ms``."""

import time

import pytest
import requests
from django.conf import settings
from django.test import Client

from gateways import services
from gateways.models import Route
from provisioning import receipts, tasks
from provisioning.models import ConfigRevision, LocalPort, ReplicaReceipt, ReplicaStatus
from provisioning.reconcile import reconcile
from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION
from provisioning.xds.bootstrap import envoy_bootstrap
from provisioning.xds.credentials import issue_replica_token
from provisioning.xds.replicas import record_ack
from tenants.roles import Role
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import free_port
from tests.xds.harness import running_envoy, wait_for
from tests.xds.test_db_envoy import route_to, serve
from tests.xds.test_envoy import seconds_until_served_by

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def org():
    return make_org("acme")


@pytest.fixture
def gateway(org, upstreams, monkeypatch):
    """acme/edge with two replicas, routing x.test to backend a; reconciled once."""
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {"replicas": 2})
    for name, upstream in upstreams.items():
        services.create_backend(ACTOR, org.tenant, name, upstream.backend())
    services.create_route(ACTOR, gateway, "all", route_to("a"))
    assert reconcile(gateway.pk).result == "created"
    gateway.port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port
    return gateway


def bootstrap(xds, replica, token):
    return envoy_bootstrap(
        gateway_key="acme/edge", replica=replica, token=token, xds_address="127.0.0.1",
        xds_port=xds.server.port, admin_port=free_port(), api_type="DELTA_GRPC",
    )  # fmt: skip


def receipt_of(org, number: int) -> dict:
    client = org.client(Role.VIEWER)
    url = f"/api/v1/tenants/acme/gateways/edge/revisions/{number}/"
    answer = client.get(url)
    assert answer.status_code == 200, answer.content
    return answer.json()["receipts"]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
def test_each_replica_s_application_of_a_change_is_recorded_and_shown(loop_thread, gateway, org):
    xds = serve(loop_thread, settings.REDIS_URL, poll_interval=60)
    try:
        tokens = [issue_replica_token(gateway, index) for index in (0, 1)]
        replica0, replica1 = bootstrap(xds, 0, tokens[0]), bootstrap(xds, 1, tokens[1])
        with running_envoy(replica0), running_envoy(replica1):
            first = ConfigRevision.objects.get(gateway=gateway, current=True)
            wait_for(lambda: first.receipts.count() == 2, message="both replicas' receipts")
            # The change, as a worker runs it for a write accepted now.
            accepted = time.time()
            start = time.perf_counter()
            services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_to("b"))
            revision = reconcile(gateway.pk, enqueued_at=accepted).revision
            served = seconds_until_served_by(requests.Session(), gateway.port, "b", start)
            wait_for(lambda: revision.receipts.count() == 2, message="both receipts")
            shown = receipt_of(org, revision.number)
    finally:
        xds.stop()
    assert (shown["applied"], shown["desired"]) == (2, 2)
    assert {r["node"] for r in shown["replicas"]} == {"acme/edge/0", "acme/edge/1"}
    assert shown["text"] == f"applied 2/2 in {shown['totalMs']:.0f} ms"
    # Counted from the acceptance: after the reconcile's own work, within the test's patience.
    assert 0 < shown["totalMs"] < 10_000
    assert all(0 < r["afterMs"] <= shown["totalMs"] for r in shown["replicas"])
    print(f"\n{shown['text']} (first request served by the change after {served * 1000:.0f} ms)")
    # The timeline's entry for the change shows the same receipt.
    client = org.client(Role.VIEWER)
    timeline = client.get("/api/v1/tenants/acme/gateways/edge/operations/").json()["results"]
    entry = next(op for op in timeline if op["revision"] == revision.number)
    assert entry["receipts"]["text"] == shown["text"]
    # And the console's revisions and timeline pages.
    console = Client()
    console.force_login(org.users[Role.VIEWER])
    for page in ("revisions", "operations"):
        body = console.get(f"/t/acme/gateways/edge/{page}/").content.decode()
        assert shown["text"] in body, page


def test_a_receipt_needs_every_type_at_a_version_of_the_replica_s_own_gateway(gateway):
    revision = ConfigRevision.objects.get(gateway=gateway, current=True)
    version, node = revision.content_hash, "acme/edge/0"
    types = (CLUSTER, LISTENER, ROUTE_CONFIGURATION)
    record_ack("acme/edge", node, types[0], version, None)
    assert not ReplicaReceipt.objects.exists()  # clusters alone: nothing applied yet
    record_ack("acme/edge", node, types[1], "an-older-version", None)
    assert not ReplicaReceipt.objects.exists()  # one type still elsewhere: not applied
    record_ack("acme/edge", node, types[1], version, None)
    record_ack("acme/edge", node, types[2], version, None)
    assert list(ReplicaReceipt.objects.values_list("node_id", flat=True)) == [node]
    # A version the gateway never had (a replica making one up) vouches for nothing.
    for type_url in types:
        record_ack("acme/edge", "acme/edge/1", type_url, "f" * 64, None)
    assert ReplicaReceipt.objects.count() == 1
    # A NACK is no receipt; a later ACK of the same revision does not move the first one.
    first = ReplicaReceipt.objects.get().applied_at
    record_ack("acme/edge", node, types[0], version, "rejected")
    record_ack("acme/edge", node, types[0], version, None)
    assert ReplicaReceipt.objects.get().applied_at == first
    assert ReplicaStatus.objects.filter(node_id=node).count() == 3
    summary = receipts.summarise(revision, revision.receipts.all(), 2)
    assert summary.text.startswith("applied 1/2 in ")
