"""The xDS server's database source with many watchers: one query per poll interval for every
gateway watched (not one per stream), streams of one gateway sharing one read, and a change
found by that poll without any notification."""

import asyncio

import pytest

from gateways import services
from gateways.models import Route
from provisioning import tasks
from provisioning.reconcile import reconcile
from provisioning.xds import db_source
from provisioning.xds.db import DatabaseThreads
from provisioning.xds.db_source import DatabaseSnapshotSource
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
GATEWAYS = 6
STREAMS_EACH = 3
POLL = 0.2


@pytest.fixture
def fleet(monkeypatch):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    tenant = make_org("acme").tenant
    services.create_backend(ACTOR, tenant, "app", {
        "endpoints": [{"ip": {"address": "192.0.2.10", "port": 8080}}]})  # fmt: skip
    gateways = []
    for index in range(GATEWAYS):
        gateway = services.create_gateway(ACTOR, tenant, f"g{index}", {})
        services.create_route(
            ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "app"}]}]}
        )
        assert reconcile(gateway.pk).result == "created"
        gateways.append(gateway)
    return gateways


def test_one_query_a_poll_for_every_watched_gateway_and_one_read_per_change(
    loop_thread, fleet, monkeypatch
):
    calls = {"many": 0, "read": 0}
    real_many, real_read = db_source._current_many, db_source._read

    def counted_many(keys):
        calls["many"] += 1
        return real_many(keys)

    def counted_read(key, known, held=None):
        calls["read"] += 1
        return real_read(key, known, held)

    monkeypatch.setattr(db_source, "_current_many", counted_many)
    monkeypatch.setattr(db_source, "_read", counted_read)
    database = DatabaseThreads()
    source = DatabaseSnapshotSource(poll_interval=POLL, notifier="none", database=database)
    keys = [f"acme/g{index}" for index in range(GATEWAYS)]
    held: dict[str, list] = {key: [None] * STREAMS_EACH for key in keys}

    async def stream(key: str, position: int):
        while True:
            snapshot = await source.watch(key, held[key][position])
            held[key][position] = snapshot.key

    tasks_ = []

    async def start():
        for key in keys:
            for position in range(STREAMS_EACH):
                tasks_.append(asyncio.ensure_future(stream(key, position)))

    async def stop():
        for task in tasks_:
            task.cancel()
        await asyncio.gather(*tasks_, return_exceptions=True)
        await source.close()

    try:
        loop_thread.run(start())
        wait_for(lambda: all(v is not None for values in held.values() for v in values),
                 message="every stream has its gateway's revision")  # fmt: skip
        loop_thread.run(asyncio.sleep(POLL / 2))
        first_reads = calls["read"]
        # Its streams share a gateway's reads: the first, and the one each makes to wait for
        # the next change (not one per stream: that would be 18 and 36).
        assert first_reads <= 2 * GATEWAYS, calls
        loop_thread.run(asyncio.sleep(POLL * 10))
        # About ten polls, each one query for all six gateways; no stream read again.
        assert 5 <= calls["many"] <= 12, calls
        assert calls["read"] == first_reads
        # A change with no notification at all: the poll finds it, one read for its streams.
        route = Route.objects.get(gateway=fleet[2])
        services.patch_route_spec(ACTOR, route, {"rules": [{"backendRefs": [{"name": "app"}],
                                                            "matches": [{"path": {
                                                                "type": "PathPrefix",
                                                                "value": "/v2"}}]}]})  # fmt: skip
        new = reconcile(fleet[2].pk).revision.content_hash
        wait_for(lambda: held["acme/g2"] == [new] * STREAMS_EACH, timeout=5,
                 message="the change found by the poll")  # fmt: skip
        assert calls["read"] - first_reads <= 2, calls
    finally:
        loop_thread.run(stop())
        database.close()
