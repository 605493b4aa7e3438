"""The in-memory snapshot store: watchers wake on a new version, from any thread."""

import asyncio
import threading

import pytest

from provisioning.translate import Resources
from provisioning.xds.resources import ResourceError
from provisioning.xds.snapshots import InMemorySnapshotStore
from tests.xds.conftest import compiled

BACKENDS = {"a": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}}


def resources() -> Resources:
    return compiled("acme", "edge", "a", BACKENDS, 8080)


def test_a_watch_returns_at_once_when_the_version_is_not_the_known_one():
    store = InMemorySnapshotStore()
    store.set("acme/edge", "v1", resources())

    async def scenario():
        assert (await store.watch("acme/edge", None)).version == "v1"
        assert (await store.watch("acme/edge", "v0")).version == "v1"

    asyncio.run(scenario())


def test_a_watch_waits_for_the_next_version_set_from_another_thread():
    store = InMemorySnapshotStore()
    store.set("acme/edge", "v1", resources())

    async def scenario():
        waiting = asyncio.ensure_future(store.watch("acme/edge", "v1"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        setter = threading.Thread(target=store.set, args=("acme/edge", "v2", resources()))
        setter.start()
        snapshot = await asyncio.wait_for(waiting, 5)
        setter.join()
        return snapshot.version

    assert asyncio.run(scenario()) == "v2"


def test_a_watch_of_a_gateway_without_config_waits_and_other_gateways_do_not_wake_it():
    store = InMemorySnapshotStore()

    async def scenario():
        waiting = asyncio.ensure_future(store.watch("acme/edge", None))
        store.set("globex/web", "g1", resources())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        store.set("acme/edge", "v1", resources())
        return (await asyncio.wait_for(waiting, 5)).version

    assert asyncio.run(scenario()) == "v1"


def test_a_cancelled_watch_leaves_no_waiter_behind():
    store = InMemorySnapshotStore()

    async def scenario():
        waiting = asyncio.ensure_future(store.watch("acme/edge", None))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

    asyncio.run(scenario())
    assert store._waiters == {}


def test_a_bad_resource_fails_in_set_and_keeps_the_previous_snapshot():
    store = InMemorySnapshotStore()
    store.set("acme/edge", "v1", resources())
    good = resources()
    broken = Resources(good.listeners, good.routes, ({**good.clusters[0], "bogus": 1},))
    with pytest.raises(ResourceError):
        store.set("acme/edge", "v2", broken)
    assert store.get("acme/edge").version == "v1"
