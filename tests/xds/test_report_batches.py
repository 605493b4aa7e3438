"""What replicas say, written in batches: a fleet ACKing at once costs a few database trips,
and the batches store exactly what writing each report alone stores."""

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from gateways import services
from gateways.models import Gateway, Route
from provisioning import tasks
from provisioning.models import ConfigRevision, ReplicaConnection, ReplicaReceipt, ReplicaStatus
from provisioning.reconcile import reconcile
from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION
from provisioning.xds.db import DatabaseThreads, WriteBatches
from provisioning.xds.replicas import (
    Report,
    record_acks,
    record_connection,
    record_connections,
)
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TYPES = (CLUSTER, LISTENER, ROUTE_CONFIGURATION)
START = datetime(2026, 12, 1, tzinfo=UTC)


def route(prefix: str) -> dict:
    rule = {"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
            "backendRefs": [{"name": "api"}]}  # fmt: skip
    return {"hostnames": ["x.test"], "rules": [rule]}


@pytest.fixture
def fleet(monkeypatch):
    """acme/edge (revisions 1 and 2) and acme/web (revision 1), two replicas each."""
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    org = make_org("acme")
    backend = {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}
    services.create_backend(ACTOR, org.tenant, "api", backend)
    versions = {}
    for name in ("edge", "web"):
        gateway = services.create_gateway(ACTOR, org.tenant, name, {"replicas": 2})
        services.create_route(ACTOR, gateway, "all", route("/"))
        assert reconcile(gateway.pk).result == "created"
        versions[name] = [ConfigRevision.objects.get(gateway=gateway, current=True).content_hash]
    edge = Gateway.objects.get(name="edge")
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=edge), route("/v2"))
    versions["edge"].append(reconcile(edge.pk).revision.content_hash)
    return versions


def reports(versions: dict[str, list[str]], seed: int = 7) -> list[Report]:
    """Each replica's reports in its own order, the replicas' interleaved at random: ACKs of
    every type, a NACK then the ACK that mends it, a made-up version, and (edge's replica 0)
    both of edge's revisions one after the other."""
    clock = iter(START + timedelta(milliseconds=n) for n in range(100_000))
    per_node = []
    for name, known in versions.items():
        for index in range(3):  # replica 2 is one more than the gateway wants
            node, key, version = f"acme/{name}/{index}", f"acme/{name}", known[-1]
            said = [(CLUSTER, version, None), (LISTENER, version, "bad listener")]
            said += [(LISTENER, version, None), (ROUTE_CONFIGURATION, version, None)]
            if index == 1:  # a version no revision of this gateway has, at first
                said = [(t, "f" * 64, None) for t in TYPES] + said
            if name == "edge" and index == 0:
                said = [(t, known[0], None) for t in TYPES] + said
            per_node.append([(key, node, *entry) for entry in said])
    shuffle = random.Random(seed)
    merged = []
    while any(per_node):
        queue = shuffle.choice([q for q in per_node if q])
        merged.append(Report(*queue.pop(0), next(clock)))
    return merged


def connections() -> list[tuple]:
    """Three replicas of each gateway connect; web's third leaves again; a deleted gateway's
    replica reports too (nothing is stored for it)."""
    opened = [
        (f"acme/{name}", f"acme/{name}/{index}", True, "xds-1", START)
        for name in ("edge", "web")
        for index in range(3)
    ]
    closed = ("acme/web", "acme/web/2", False, "xds-1", START)
    return [*opened, closed, ("acme/gone", "acme/gone/0", True, "xds-1", START)]


def stored() -> tuple:
    statuses = ReplicaStatus.objects.values_list(
        "gateway__name", "node_id", "type_url", "acked_version", "rejected_version",
        "nack_message", "last_seen",
    )  # fmt: skip
    receipts = ReplicaReceipt.objects.values_list(
        "revision__gateway__name", "revision__number", "node_id", "applied_at"
    )
    streams = ReplicaConnection.objects.values_list("gateway__name", "node_id", "connected")
    gateways = {
        g.name: (g.status.get("phase"), g.status.get("replicas"),
                 [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                  for c in g.status.get("conditions", []) if c["type"] == "Programmed"])
        for g in Gateway.objects.all()
    }  # fmt: skip
    return sorted(statuses), sorted(receipts), sorted(streams), gateways


def forget(statuses: dict) -> None:
    ReplicaStatus.objects.all().delete()
    ReplicaReceipt.objects.all().delete()
    ReplicaConnection.objects.all().delete()
    for name, status in statuses.items():
        Gateway.objects.filter(name=name).update(status=status)


class CountingThreads(DatabaseThreads):
    def __init__(self):
        super().__init__(workers=2)
        self.trips = 0

    async def run(self, function, *args):
        self.trips += 1
        return await super().run(function, *args)


def in_batches(loop, function, items, limit):
    """Every item added at once, as many streams' reports arrive together."""
    database = CountingThreads()
    batches = WriteBatches(database, function, limit=limit)

    async def all_at_once():
        return await asyncio.gather(*(batches.add(item) for item in items), return_exceptions=True)

    try:
        return loop.run(all_at_once()), database.trips
    finally:
        database.close()


def test_batches_store_what_one_report_at_a_time_stores_in_far_fewer_trips(fleet, loop_thread):
    before = dict(Gateway.objects.values_list("name", "status"))
    said = reports(fleet)
    for gateway_key, node_id, connected, server, _ in connections():
        record_connection(gateway_key, node_id, connected, server)
    for report in said:
        record_acks([report])
    one_by_one = stored()
    # What was said adds up to what a user sees: both gateways' replicas run the newest
    # revision; edge's replica 0 applied both of edge's revisions; nothing vouches for the
    # made-up version; the NACK was mended by the ACK after it.
    phases = {name: shown[0] for name, shown in one_by_one[3].items()}
    assert phases == {"edge": "Ready", "web": "Ready"}
    messages = {name: shown[2][0]["message"] for name, shown in one_by_one[3].items()}
    assert messages == {"edge": "3 replicas run revision 2 (2 desired)",
                        "web": "2 of 2 replicas run revision 1"}  # fmt: skip
    assert ("edge", 1, "acme/edge/0") in {receipt[:3] for receipt in one_by_one[1]}
    assert len(one_by_one[1]) == 1 + 3 + 3
    assert not any(status[4] for status in one_by_one[0])

    forget(before)
    results, trips = in_batches(loop_thread, record_connections, connections(), limit=500)
    assert results == [None] * len(connections()) and trips == 1
    results, trips = in_batches(loop_thread, record_acks, said, limit=16)
    assert results == [None] * len(said)
    assert trips == -(-len(said) // 16)  # ⌈reports / 16⌉, against one trip per report
    assert stored() == one_by_one


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL bounds the column")
def test_a_report_that_cannot_be_stored_fails_alone(fleet, loop_thread):
    version = fleet["web"][0]
    good = [Report("acme/web", "acme/web/0", t, version, None, START) for t in TYPES]
    bad = Report("acme/web", "acme/web/1", "x" * 300, version, None, START)
    results, trips = in_batches(loop_thread, record_acks, [good[0], bad, *good[1:]], limit=500)
    assert [type(r).__name__ for r in results] == ["NoneType", "DataError", "NoneType", "NoneType"]
    assert trips == 1 + 4  # the batch, then each report alone
    assert ReplicaStatus.objects.filter(node_id="acme/web/0").count() == 3
    assert not ReplicaStatus.objects.filter(node_id="acme/web/1").exists()
    assert ReplicaReceipt.objects.filter(node_id="acme/web/0").count() == 1


def test_a_forged_nack_message_is_stored_as_text_and_fails_nothing(fleet, loop_thread):
    """Envoy's message is whatever the replica sends: NUL characters (which PostgreSQL's text
    refuses) are dropped, so a forged NACK cannot fail the batch of the reports beside it."""
    version = fleet["web"][0]
    forged = Report("acme/web", "acme/web/1", CLUSTER, version, "bad\x00message", START)
    good = [Report("acme/web", "acme/web/0", t, version, None, START) for t in TYPES]
    results, trips = in_batches(loop_thread, record_acks, [forged, *good], limit=500)
    assert results == [None] * 4 and trips == 1
    stored = ReplicaStatus.objects.get(node_id="acme/web/1")
    assert (stored.rejected_version, stored.nack_message) == (version, "badmessage")
    assert ReplicaReceipt.objects.filter(node_id="acme/web/0").count() == 1
