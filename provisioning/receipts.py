"""Receipts: when each replica applied a revision, counted from when the change was accepted.

The xDS server records a receipt the first time a replica has ACKed a revision's version for
every resource type it holds (``record``); reads summarise them as ``applied 2/2 in 41 ms``:
replicas that applied it, of the replicas the gateway wants, and how long after the change's
acceptance (the API's answer) the slowest of them applied it.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from provisioning import readiness
from provisioning.models import ConfigRevision, ReplicaReceipt, ReplicaStatus
from provisioning.translate.types import CLUSTER, LISTENER

# Every replica subscribes to these (routes and endpoints follow from them): a replica that has
# not ACKed both has not applied anything yet, whatever the one type it did ACK says.
REQUIRED_TYPES = frozenset({CLUSTER, LISTENER})


def record(gateway_id: int, node_id: str, version: str, at) -> bool:
    """After an ACK of ``version`` by ``node_id``: a receipt for the gateway's revision of that
    version once every type the replica holds is at it (clusters and listeners at least: on a
    first connection, routes follow listeners by a few milliseconds and may come after the
    receipt). True when one was written."""
    acked = dict(
        ReplicaStatus.objects.filter(gateway_id=gateway_id, node_id=node_id).values_list(
            "type_url", "acked_version"
        )
    )
    if not acked.keys() >= REQUIRED_TYPES or any(v != version for v in acked.values()):
        return False
    revision_id = (
        ConfigRevision.objects.filter(gateway_id=gateway_id, content_hash=version)
        .order_by("-number")
        .values_list("pk", flat=True)
        .first()
    )
    if revision_id is None:  # a version this gateway never had: nothing to vouch for
        return False
    if ReplicaReceipt.objects.filter(revision_id=revision_id, node_id=node_id).exists():
        return False
    try:
        with transaction.atomic():
            ReplicaReceipt.objects.create(revision_id=revision_id, node_id=node_id, applied_at=at)
    except IntegrityError:  # another server recorded it first
        return False
    return True


@dataclass(frozen=True)
class Summary:
    applied: int
    desired: int
    total_ms: float | None  # the slowest receipt after the request (None: none yet)
    replicas: list[dict]

    @property
    def text(self) -> str:
        if not self.applied:
            return f"applied 0/{self.desired}"
        return f"applied {self.applied}/{self.desired} in {self.total_ms:.0f} ms"

    def as_api(self) -> dict:
        return {"applied": self.applied, "desired": self.desired, "totalMs": self.total_ms,
                "text": self.text, "replicas": self.replicas}  # fmt: skip


def _ms(start, end) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds() * 1000), 1)


def summarise(revision: ConfigRevision, receipts, desired: int) -> Summary:
    """``receipts``: the revision's ReplicaReceipt rows (prefetched by the caller)."""
    rows = sorted(receipts, key=lambda r: (r.applied_at, r.node_id))
    replicas = [
        {"node": r.node_id, "appliedAt": r.applied_at.isoformat().replace("+00:00", "Z"),
         "afterMs": _ms(revision.requested_at, r.applied_at)}
        for r in rows
    ]  # fmt: skip
    slowest = max((r["afterMs"] for r in replicas if r["afterMs"] is not None), default=None)
    return Summary(len(rows), desired, slowest, replicas)


def of(revision: ConfigRevision, gateway) -> Summary:
    """The revision's receipts (prefetch ``receipts`` for many) against the replicas the
    gateway wants now."""
    return summarise(revision, revision.receipts.all(), readiness.desired_replicas(gateway.spec))
