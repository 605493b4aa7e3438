"""Where the xDS server gets each gateway's config: a snapshot per gateway key, and a way to wait
for the next one.

The server only needs ``watch``; the in-memory store here serves tests and embedding, and the
database-backed source (config revisions, woken by a change notification) implements the same
``SnapshotSource`` protocol.
"""

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from provisioning.translate import Resources
from provisioning.translate.types import CLUSTER_LOAD_ASSIGNMENT, ROUTE_CONFIGURATION, VIRTUAL_HOST
from provisioning.xds.resources import EncodedResource, encode


@dataclass(frozen=True)
class Snapshot:
    """One gateway's whole config at one version, encoded for sending."""

    version: str  # the config revision's (what ACKs report, for every type)
    resources: Mapping[str, Mapping[str, EncodedResource]]  # type URL → name → resource
    # The ClusterLoadAssignments' content version ("" without EDS clusters): endpoints change
    # without a new revision, so a snapshot is new when either version moves.
    endpoints_version: str = ""
    # The whole route configurations (virtual hosts inline), for state-of-the-world streams,
    # which cannot take VHDS: encoded on first use (most replicas speak Delta).
    routes: tuple[dict, ...] = field(default=(), compare=False, repr=False)
    _whole: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        version: str,
        resources: Resources,
        assignments: tuple[dict, ...] = (),
        endpoints_version: str = "",
        previous: "Snapshot | None" = None,
    ) -> "Snapshot":
        """``previous``: the gateway's last snapshot, whose unchanged resources are reused."""
        encoded = encode(resources, assignments, previous=previous and previous.resources)
        return cls(version, encoded, endpoints_version, resources.routes)

    def with_assignments(self, assignments: tuple[dict, ...], endpoints_version: str) -> "Snapshot":
        """The same config with these ClusterLoadAssignments (only they are encoded)."""
        encoded = encode(Resources((), (), ()), assignments)[CLUSTER_LOAD_ASSIGNMENT]
        return Snapshot(
            self.version, {**self.resources, CLUSTER_LOAD_ASSIGNMENT: encoded}, endpoints_version,
            self.routes, self._whole,
        )  # fmt: skip

    @property
    def sotw_resources(self) -> Mapping[str, Mapping[str, EncodedResource]]:
        """``resources`` for a state-of-the-world stream: whole route configurations, no
        virtual hosts of their own."""
        whole = self._whole.get("routes")
        if whole is None:
            whole = encode(Resources((), self.routes, ()), vhds=False)[ROUTE_CONFIGURATION]
            self._whole["routes"] = whole
        found = {t: r for t, r in self.resources.items() if t != VIRTUAL_HOST}
        return {**found, ROUTE_CONFIGURATION: whole}

    @property
    def key(self) -> str:
        """What watchers compare: the revision's version, and the endpoints' if any."""
        if not self.endpoints_version:
            return self.version
        return f"{self.version}+{self.endpoints_version}"


class SnapshotSource(Protocol):
    async def watch(self, gateway_key: str, known_version: str | None) -> Snapshot:
        """The gateway's current snapshot as soon as its ``key`` differs from
        ``known_version`` (at once if it already does; ``None`` knows no version)."""
        ...


class InMemorySnapshotStore:
    """Snapshots kept in this process.

    ``set`` may be called from any thread (a test, a Celery-less embedding); waiters live on
    their own event loops and are woken through ``call_soon_threadsafe``, which an
    ``asyncio.Condition`` (bound to one loop, not thread-safe) could not do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}

    def set(
        self,
        gateway_key: str,
        version: str,
        resources: Resources,
        assignments: tuple[dict, ...] = (),
        endpoints_version: str = "",
    ) -> Snapshot:
        """Encodes (raising ResourceError for a bad resource) and wakes every watcher."""
        snapshot = Snapshot.build(version, resources, assignments, endpoints_version)
        with self._lock:
            self._snapshots[gateway_key] = snapshot
            waiters = self._waiters.pop(gateway_key, set())
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)
        return snapshot

    def get(self, gateway_key: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(gateway_key)

    async def watch(self, gateway_key: str, known_version: str | None) -> Snapshot:
        loop = asyncio.get_running_loop()
        while True:
            future = loop.create_future()
            waiter = (loop, future)
            with self._lock:
                current = self._snapshots.get(gateway_key)
                if current is not None and current.key != known_version:
                    return current
                self._waiters.setdefault(gateway_key, set()).add(waiter)
            try:
                await future
            finally:
                with self._lock:
                    waiting = self._waiters.get(gateway_key)
                    if waiting is not None:
                        waiting.discard(waiter)
                        if not waiting:
                            del self._waiters[gateway_key]


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
