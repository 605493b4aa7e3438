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

from django.utils import timezone

from gateways.models import Gateway
from provisioning import metering, readiness, receipts
from provisioning.models import ReplicaConnection, ReplicaStatus
from provisioning.xds.db import DatabaseThreads

log = logging.getLogger(__name__)

NACK_BURST = 5  # per node and window
GATEWAY_NACK_BURST = 20  # per gateway and window, whatever node ids the NACKs name
NACK_WINDOW = 60.0  # seconds


def _gateway_id(gateway_key: str) -> int | None:
    tenant, _, name = gateway_key.partition("/")
    return (
        Gateway.objects.filter(tenant__slug=tenant, name=name).values_list("pk", flat=True).first()
    )


def record_ack(gateway_key: str, node_id: str, type_url: str, version: str, error, at=None) -> None:
    """Stores what one replica said of one resource type (``at``: when it said it); never
    touches which revision is current. An ACK that completes the replica's set of types at one
    revision's version is that replica's receipt for it (``provisioning.receipts``)."""
    gateway_id = _gateway_id(gateway_key)
    if gateway_id is None:  # deleted while its replicas were still connected
        return
    now = at or timezone.now()
    if error is None:
        fields = {"acked_version": version, "rejected_version": "", "nack_message": ""}
    else:
        fields = {"rejected_version": version[:64], "nack_message": str(error)[:4000]}
    ReplicaStatus.objects.update_or_create(
        gateway_id=gateway_id, node_id=node_id, type_url=type_url,
        defaults={**fields, "last_seen": now},
    )  # fmt: skip
    if error is None:
        receipts.record(gateway_id, node_id, version, now)
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
    """A stream opened (``connected``) or the node's last stream closed. On opening, what an
    earlier incarnation of the node said is forgotten: it reports afresh."""
    gateway_id = _gateway_id(gateway_key)
    if gateway_id is None:
        return
    if connected:
        ReplicaStatus.objects.filter(gateway_id=gateway_id, node_id=node_id).delete()
        # A Kubernetes pod's usage run starts as its Envoy connects for its first config.
        metering.open_pod_of(node_id)
    ReplicaConnection.objects.update_or_create(
        gateway_id=gateway_id, node_id=node_id,
        defaults={"connected": connected, "server": server, "changed_at": timezone.now()},
    )  # fmt: skip
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

    async def __call__(self, gateway_key, node_id, type_url, version, error) -> None:
        if error is not None:
            if not self.limiter.allow(gateway_key, node_id):
                return
            log.warning("xds: %s rejected %s version %s: %s", node_id, type_url, version, error)
        heard = timezone.now()  # before the trip to the database threads: the receipt's time
        await self.database.run(record_ack, gateway_key, node_id, type_url, version, error, heard)


class ConnectionRecorder:
    """``on_connect``/``on_disconnect`` for the server, through the database threads."""

    def __init__(self, database: DatabaseThreads, server: str = ""):
        self.database = database
        self.server = server

    async def __call__(self, gateway_key: str, node_id: str, connected: bool) -> None:
        await self.database.run(record_connection, gateway_key, node_id, connected, self.server)


class Authenticator:
    """``authenticate`` for the server: the token check through the database threads."""

    def __init__(self, database: DatabaseThreads):
        self.database = database

    async def __call__(self, token: str):
        from provisioning.xds.credentials import identify

        return await self.database.run(identify, token)
