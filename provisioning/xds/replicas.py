"""What each Envoy replica said about each resource type (the xDS server's ``on_ack``).

An ACK records the version the replica holds. A NACK records the rejected version and Envoy's
message; when the rejected version is the gateway's current revision, the gateway's
``Programmed`` condition becomes ``False``/``Rejected`` with that message (the replica keeps
serving what it had).
"""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gateways.conditions import set_condition
from gateways.models import Gateway
from provisioning.models import ConfigRevision, ReplicaStatus
from provisioning.xds.db import DatabaseThreads

log = logging.getLogger(__name__)


def _gateway(gateway_key: str) -> Gateway | None:
    tenant, _, name = gateway_key.partition("/")
    return Gateway.objects.filter(tenant__slug=tenant, name=name).first()


def record_ack(gateway_key: str, node_id: str, type_url: str, version: str, error) -> None:
    gateway = _gateway(gateway_key)
    if gateway is None:  # deleted while its replicas were still connected
        return
    now = timezone.now()
    if error is None:
        fields = {"acked_version": version, "rejected_version": "", "nack_message": ""}
    else:
        fields = {"rejected_version": version, "nack_message": error}
    ReplicaStatus.objects.update_or_create(
        gateway=gateway, node_id=node_id, type_url=type_url,
        defaults={**fields, "last_seen": now},
    )  # fmt: skip
    if error is not None:
        _mark_rejected(gateway, version, error)


@transaction.atomic
def _mark_rejected(gateway: Gateway, version: str, error: str) -> None:
    current = ConfigRevision.objects.filter(gateway=gateway, current=True).first()
    if current is None or current.content_hash != version:
        return  # an older version; the current one is what the condition is about
    gateway = Gateway.objects.select_for_update().get(pk=gateway.pk)
    conditions = set_condition(
        gateway.status.get("conditions", []), "Programmed", "False", "Rejected",
        f"an Envoy replica rejected revision {current.number}: {error}", gateway.generation,
    )  # fmt: skip
    status = {**gateway.status, "conditions": conditions}
    if status != gateway.status:
        Gateway.objects.filter(pk=gateway.pk).update(
            status=status, resource_version=F("resource_version") + 1
        )


class AckRecorder:
    """``on_ack`` for the server: records through the database threads."""

    def __init__(self, database: DatabaseThreads):
        self.database = database

    async def __call__(self, gateway_key, node_id, type_url, version, error) -> None:
        await self.database.run(record_ack, gateway_key, node_id, type_url, version, error)


class Authenticator:
    """``authenticate`` for the server: the token check through the database threads."""

    def __init__(self, database: DatabaseThreads):
        self.database = database

    async def __call__(self, token: str) -> str | None:
        from provisioning.xds.credentials import authenticate

        return await self.database.run(authenticate, token)
