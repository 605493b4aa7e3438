"""Receipts: when each replica applied a revision, counted from when the change was accepted.

The xDS server records a receipt the first time a replica has ACKed a revision's version for
every resource type it holds (``record``); reads summarise them as ``applied 2/2 in 41 ms``:
replicas that applied it, of the replicas the gateway wants, and how long after the change's
acceptance (the API's answer) the slowest of them applied it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from provisioning import readiness
from provisioning.models import ConfigRevision, ReplicaReceipt
from provisioning.translate.types import CLUSTER, LISTENER

# Every replica subscribes to these (routes and endpoints follow from them): a replica that has
# not ACKed both has not applied anything yet, whatever the one type it did ACK says.
REQUIRED_TYPES = frozenset({CLUSTER, LISTENER})


def complete(acked: Mapping[str, str], version: str) -> bool:
    """Whether a replica that holds ``acked`` (type → ACKed version) has applied ``version``:
    every type it holds is at it, clusters and listeners at least (on a first connection,
    routes follow listeners by a few milliseconds and may come after the receipt)."""
    return acked.keys() >= REQUIRED_TYPES and all(v == version for v in acked.values())


def record(applied: Mapping[tuple[int, str, str], datetime]) -> None:
    """Receipts for ``applied``: (gateway id, node id, version) → when the replica completed
    that version (``complete``), each for the gateway's newest revision of that version. A
    replica's first receipt for a revision stands (another server's, or an earlier one); a
    version the gateway never had vouches for nothing."""
    if not applied:
        return
    revisions = ConfigRevision.objects.filter(
        gateway_id__in={gateway_id for gateway_id, _, _ in applied},
        content_hash__in={version for _, _, version in applied},
    ).order_by("number")
    found = revisions.values_list("pk", "gateway_id", "content_hash")
    newest = {(gateway_id, version): pk for pk, gateway_id, version in found}  # the last: newest
    rows = [
        ReplicaReceipt(revision_id=newest[gateway_id, version], node_id=node_id, applied_at=at)
        for (gateway_id, node_id, version), at in sorted(applied.items())
        if (gateway_id, version) in newest
    ]
    ReplicaReceipt.objects.bulk_create(rows, ignore_conflicts=True)


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
