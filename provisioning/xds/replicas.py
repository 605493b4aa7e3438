"""What each Envoy replica says to the xDS servers, stored for status (``on_ack``, and the
stream opening and closing).

An ACK records the version the replica holds. A NACK records the rejected version and Envoy's
message; when the rejected version is the gateway's current revision, that revision becomes
``rejected`` (with Envoy's message) and the newest valid revision before it is served again
(the replica never stopped serving it). Every report ends in ``readiness.refresh``.
"""

import logging
import socket

from django.db import transaction
from django.utils import timezone

from gateways.models import Gateway
from provisioning import readiness, revisions
from provisioning.models import ConfigRevision, ReplicaConnection, ReplicaStatus
from provisioning.xds.db import DatabaseThreads
from provisioning.xds.notify import notify_changed

log = logging.getLogger(__name__)


def _gateway_id(gateway_key: str) -> int | None:
    tenant, _, name = gateway_key.partition("/")
    return (
        Gateway.objects.filter(tenant__slug=tenant, name=name).values_list("pk", flat=True).first()
    )


def record_ack(gateway_key: str, node_id: str, type_url: str, version: str, error) -> None:
    gateway_id = _gateway_id(gateway_key)
    if gateway_id is None:  # deleted while its replicas were still connected
        return
    now = timezone.now()
    if error is None:
        fields = {"acked_version": version, "rejected_version": "", "nack_message": ""}
    else:
        fields = {"rejected_version": version, "nack_message": error}
    ReplicaStatus.objects.update_or_create(
        gateway_id=gateway_id, node_id=node_id, type_url=type_url,
        defaults={**fields, "last_seen": now},
    )  # fmt: skip
    if error is not None:
        _reject(gateway_key, gateway_id, version, f"{node_id} rejected it: {error}")
    readiness.refresh(gateway_id)


@transaction.atomic
def _reject(gateway_key: str, gateway_id: int, version: str, message: str) -> None:
    gateway = Gateway.objects.select_for_update().filter(pk=gateway_id).first()
    current = ConfigRevision.objects.filter(gateway_id=gateway_id, current=True).first()
    if gateway is None or current is None or current.content_hash != version:
        return  # an older version; what is served now is not in question
    current.state = ConfigRevision.State.REJECTED
    current.message = message[:4000]
    current.current = False
    current.save(update_fields=["state", "message", "current"])
    previous = (
        ConfigRevision.objects.filter(
            gateway_id=gateway_id, state=ConfigRevision.State.VALID, number__lt=current.number
        )
        .order_by("-number")
        .first()
    )
    if previous is not None:
        revisions.make_current(previous)
    log.warning(
        "xds: revision %s of %s rejected by a replica; serving %s again",
        current.number, gateway_key, previous.number if previous else "nothing",
    )  # fmt: skip
    notify_changed(gateway_key)


def record_connection(gateway_key: str, node_id: str, connected: bool, server: str) -> None:
    """A stream opened (``connected``) or the node's last stream closed. On opening, what an
    earlier incarnation of the node said is forgotten: it reports afresh."""
    gateway_id = _gateway_id(gateway_key)
    if gateway_id is None:
        return
    if connected:
        ReplicaStatus.objects.filter(gateway_id=gateway_id, node_id=node_id).delete()
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

    def __init__(self, database: DatabaseThreads):
        self.database = database

    async def __call__(self, gateway_key, node_id, type_url, version, error) -> None:
        await self.database.run(record_ack, gateway_key, node_id, type_url, version, error)


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
