"""A change notification never lets a watcher settle for a read that began before the change:
the database source shares one read among a gateway's streams, and a wake starts a new one."""

import asyncio
from types import SimpleNamespace

from provisioning.xds.db_source import DatabaseSnapshotSource

KEY = "acme/edge"


class Source(DatabaseSnapshotSource):
    """The real watch/wake/sharing logic over a stand-in for the database read: ``version`` is
    what the database holds; a read sees it when it starts, and finishes when ``gate`` opens."""

    def __init__(self):
        super().__init__(notifier="none", poll_interval=60, database=object())
        self.version, self.reads = "v1", 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def _load(self, gateway_key):
        seen = self.version
        self.reads += 1
        await self.gate.wait()
        return SimpleNamespace(key=seen)


def test_a_woken_watcher_reads_again_instead_of_joining_an_older_read():
    async def scenario():
        source = Source()
        waiting = asyncio.ensure_future(source.watch(KEY, "v1"))  # holds v1: waits
        await asyncio.sleep(0.01)
        assert not waiting.done() and source.reads == 1
        source.gate.clear()
        other = asyncio.ensure_future(source.watch(KEY, None))  # a read begins: it sees v1
        await asyncio.sleep(0.01)
        source.version = "v2"  # committed while that read is in flight…
        source.wake(KEY)  # …and notified
        await asyncio.sleep(0.01)
        source.gate.set()
        assert (await asyncio.wait_for(other, 1)).key == "v1"  # the older read's answer
        assert (await asyncio.wait_for(waiting, 1)).key == "v2"  # not left waiting with v1
        await source.close()

    asyncio.run(scenario())


def test_streams_of_one_gateway_share_a_read_in_flight():
    async def scenario():
        source = Source()
        source.gate.clear()
        watchers = [asyncio.ensure_future(source.watch(KEY, None)) for _ in range(5)]
        await asyncio.sleep(0.01)
        source.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*watchers), 1)
        assert [a.key for a in answers] == ["v1"] * 5 and source.reads == 1
        await source.close()

    asyncio.run(scenario())
