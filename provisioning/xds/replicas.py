"""What each Envoy replica says to the xDS servers, stored for status (``on_ack``, and the
stream opening and closing).

An ACK records the version the replica holds. A NACK records, for that replica only, the
rejected version and Envoy's message. No report from a replica changes which revision is
current: revisions become current only by reconcile or by an explicit rollback. A NACK of the
current revision shows in the gateway's status (``Programmed`` = ``False``/``Rejected``, naming
the replica and Envoy's message) while the replica keeps serving what it had; the tenant or an
operator decides what to do (roll back, or fix and apply again). Every report ends in
``readiness.refresh``.

A stream can send NACKs as fast as it likes, so the recorder lets through at most
``NACK_BURST`` NACKs per node and ``GATEWAY_NACK_BURST`` per gateway every ``NACK_WINDOW``
seconds; the rest cost neither a database write nor a log line beyond one per window.
"""

import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from gateways.models import Gateway
from provisioning import metering, readiness, receipts
from provisioning.models import ReplicaConnection, ReplicaStatus
from provisioning.xds.db import DatabaseThreads, WriteBatches

log = logging.getLogger(__name__)

NACK_BURST = 5  # per node and window
GATEWAY_NACK_BURST = 20  # per gateway and window, whatever node ids the NACKs name
NACK_WINDOW = 60.0  # seconds


@dataclass(frozen=True)
class Report:
    """What one replica said of one resource type (``error``: None for an ACK, Envoy's message
    for a NACK), and when the server heard it."""

    gateway_key: str
    node_id: str
    type_url: str
    version: str
    error: str | None
    at: datetime


def _gateway_ids(keys: set[str]) -> dict[str, int]:
    """Gateway key (``tenant/name``) → primary key, in one query; deleted gateways are left out."""
    pairs = {tuple(key.partition("/")[::2]) for key in keys}
    rows = Gateway.objects.filter(
        tenant__slug__in={tenant for tenant, _ in pairs}, name__in={name for _, name in pairs}
    ).values_list("tenant__slug", "name", "pk")
    return {f"{tenant}/{name}": pk for tenant, name, pk in rows if (tenant, name) in pairs}


def record_ack(gateway_key: str, node_id: str, type_url: str, version: str, error, at=None) -> None:
    """Stores what one replica said of one resource type (``at``: when it said it)."""
    record_acks([Report(gateway_key, node_id, type_url, version, error, at or timezone.now())])


def record_acks(reports: Sequence[Report]) -> None:
    """Stores what replicas said, in the order they said it; never touches which revision is
    current. An ACK that completes a replica's set of types at one revision's version is that
    replica's receipt for it (``provisioning.receipts``). A batch costs a few queries whatever
    its size, and one status refresh per gateway it names."""
    ids = _gateway_ids({report.gateway_key for report in reports})
    heard = [(ids[r.gateway_key], r) for r in reports if r.gateway_key in ids]
    if not heard:  # gateways deleted while their replicas were still connected
        return
    pairs = {(gateway_id, report.node_id) for gateway_id, report in heard}
    # (gateway, node) → type → [acked version, rejected version, NACK message]
    held: dict[tuple[int, str], dict[str, list[str]]] = {pair: {} for pair in pairs}
    rows = ReplicaStatus.objects.filter(
        gateway_id__in={gateway_id for gateway_id, _ in pairs},
        node_id__in={node_id for _, node_id in pairs},
    ).values_list("gateway_id", "node_id", "type_url", "acked_version", "rejected_version",
                  "nack_message")  # fmt: skip
    for gateway_id, node_id, type_url, *row in rows:
        if (gateway_id, node_id) in held:
            held[gateway_id, node_id][type_url] = row
    seen: dict[tuple[int, str, str], datetime] = {}
    applied: dict[tuple[int, str, str], datetime] = {}
    for gateway_id, report in heard:
        types = held[gateway_id, report.node_id]
        row = types.setdefault(report.type_url, ["", "", ""])
        if report.error is None:
            row[:] = [report.version, "", ""]
            acked = {type_url: held_row[0] for type_url, held_row in types.items()}
            if receipts.complete(acked, report.version):
                applied.setdefault((gateway_id, report.node_id, report.version), report.at)
        else:
            # Envoy's message as the replica sent it, but for NUL characters (PostgreSQL's
            # text refuses them: a forged NACK must not fail the batch it is in).
            row[1:] = [report.version[:64], str(report.error).replace("\x00", "")[:4000]]
        seen[gateway_id, report.node_id, report.type_url] = report.at
    # In key order: two servers writing overlapping batches lock rows in the same order.
    ReplicaStatus.objects.bulk_create(
        [
            ReplicaStatus(
                gateway_id=gateway_id,
                node_id=node_id,
                type_url=type_url,
                acked_version=row[0],
                rejected_version=row[1],
                nack_message=row[2],
                last_seen=at,
            )
            for (gateway_id, node_id, type_url), at in sorted(seen.items())
            for row in [held[gateway_id, node_id][type_url]]
        ],
        update_conflicts=True,
        unique_fields=["gateway", "node_id", "type_url"],
        update_fields=["acked_version", "rejected_version", "nack_message", "last_seen"],
    )
    receipts.record(applied)
    for gateway_id in sorted({gateway_id for gateway_id, _ in pairs}):
        readiness.refresh(gateway_id)


class NackLimiter:
    """At most ``burst`` NACKs per (gateway, node), and ``gateway_burst`` per gateway whatever
    node ids they name, in each window of ``window`` seconds. The first NACK of a gateway
    refused in a window is logged; the others are dropped silently."""

    def __init__(self, burst: int = NACK_BURST, window: float = NACK_WINDOW,
                 gateway_burst: int = GATEWAY_NACK_BURST, clock=time.monotonic):  # fmt: skip
        self.burst = burst
        self.gateway_burst = gateway_burst
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def _count(self, key: tuple[str, str], now: float) -> int:
        """How many came before this one in the key's current window (this one counted)."""
        started, count = self._windows.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        self._windows[key] = (started, count + 1)
        return count

    def allow(self, gateway_key: str, node_id: str) -> bool:
        now = self.clock()
        if len(self._windows) > 10_000:  # forget finished windows of nodes long gone
            self._windows = {
                key: value for key, value in self._windows.items() if now - value[0] < self.window
            }
        node_allowed = self._count((gateway_key, node_id), now) < self.burst
        # The gateway's allowance is only spent by NACKs its node's allowance lets through.
        if node_allowed and self._count((gateway_key, ""), now) < self.gateway_burst:
            return True
        if self._count((gateway_key, "refused"), now) == 0:  # one line per gateway and window
            log.warning("xds: NACKs for %s come too fast (%s among them); ignoring the excess "
                        "for a while", gateway_key, node_id)  # fmt: skip
        return False


def record_connection(gateway_key: str, node_id: str, connected: bool, server: str) -> None:
    """A stream opened (``connected``) or the node's last stream closed."""
    record_connections([(gateway_key, node_id, connected, server, timezone.now())])


def record_connections(reports: Sequence[tuple[str, str, bool, str, datetime]]) -> None:
    """Streams opened or closed: (gateway key, node id, connected, server, when), in order. On
    opening, what an earlier incarnation of the node said is forgotten: it reports afresh."""
    ids = _gateway_ids({gateway_key for gateway_key, *_ in reports})
    last: dict[tuple[int, str], tuple[bool, str, datetime]] = {}
    opened: dict[int, set[str]] = {}
    for gateway_key, node_id, connected, server, at in reports:
        gateway_id = ids.get(gateway_key)
        if gateway_id is None:
            continue
        last[gateway_id, node_id] = (connected, server, at)
        if connected:
            opened.setdefault(gateway_id, set()).add(node_id)
    for gateway_id, node_ids in sorted(opened.items()):
        ReplicaStatus.objects.filter(gateway_id=gateway_id, node_id__in=node_ids).delete()
    # A Kubernetes pod's usage run starts as its Envoy connects for its first config.
    metering.open_pods_of({node_id for node_ids in opened.values() for node_id in node_ids})
    ReplicaConnection.objects.bulk_create(
        [
            ReplicaConnection(
                gateway_id=gateway_id,
                node_id=node_id,
                connected=connected,
                server=server,
                changed_at=at,
            )
            for (gateway_id, node_id), (connected, server, at) in sorted(last.items())
        ],
        update_conflicts=True,
        unique_fields=["gateway", "node_id"],
        update_fields=["connected", "server", "changed_at"],
    )
    for gateway_id in sorted({gateway_id for gateway_id, _ in last}):
        readiness.refresh(gateway_id)


def forget_server(server: str) -> None:
    """At a server's start: the streams it held before a crash are gone."""
    stale = ReplicaConnection.objects.filter(server=server, connected=True)
    gateway_ids = set(stale.values_list("gateway_id", flat=True))
    stale.update(connected=False, changed_at=timezone.now())
    for gateway_id in gateway_ids:
        readiness.refresh(gateway_id)


def server_name(port: int) -> str:
    return f"{socket.gethostname()}:{port}"


class AckRecorder:
    """``on_ack`` for the server: records through the database threads."""

    def __init__(self, database: DatabaseThreads, limiter: NackLimiter | None = None):
        self.database = database
        self.limiter = limiter or NackLimiter()
        self._batches = WriteBatches(database, record_acks)

    async def __call__(self, gateway_key, node_id, type_url, version, error) -> None:
        if error is not None:
            if not self.limiter.allow(gateway_key, node_id):
                return
            log.warning("xds: %s rejected %s version %s: %s", node_id, type_url, version, error)
        heard = timezone.now()  # before the wait for a batch: the receipt's time
        await self._batches.add(Report(gateway_key, node_id, type_url, version, error, heard))


class ConnectionRecorder:
    """``on_connect``/``on_disconnect`` for the server, through the database threads."""

    def __init__(self, database: DatabaseThreads, server: str = ""):
        self.server = server
        self._batches = WriteBatches(database, record_connections)

    async def __call__(self, gateway_key: str, node_id: str, connected: bool) -> None:
        await self._batches.add((gateway_key, node_id, connected, self.server, timezone.now()))


class Authenticator:
    """``authenticate`` for the server: the token check through the database threads."""

    def __init__(self, database: DatabaseThreads):
        self.database = database

    async def __call__(self, token: str):
        from provisioning.xds.credentials import identify

        return await self.database.run(identify, token)
