"""What the platform keeps of its own past, and for how long: operations timeline entries, and
what the xDS servers heard from replicas that left long ago. Revisions are pruned by number as
they are made (``revisions.prune``); access logs by each plan's retention
(``access_logs.prune``).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from provisioning.models import GatewayOperation, ReplicaConnection, ReplicaStatus

BATCH = 5000


@dataclass(frozen=True)
class Pruned:
    operations: int
    replicas: int


def prune(now: datetime | None = None) -> Pruned:
    now = now or timezone.now()
    return Pruned(
        operations=prune_timeline(now - timedelta(days=settings.GANTRY_TIMELINE_RETENTION_DAYS)),
        replicas=forget_departed_replicas(
            now - timedelta(hours=settings.GANTRY_DEPARTED_REPLICA_HOURS)
        ),
    )


def prune_timeline(cutoff: datetime) -> int:
    """Deletes timeline entries that began before ``cutoff``, except the one that made each
    revision still kept (a revision's page says which operation made it). In batches: no
    long lock on a big table."""
    old = GatewayOperation.objects.filter(started_at__lt=cutoff)
    # The entry that made a revision is its first (later ones found it unchanged): if any of
    # a revision's entries is old, that one is.
    makers = (
        old.filter(revision__isnull=False)
        .values("revision")
        .annotate(first=Min("id"))
        .values_list("first", flat=True)
    )
    doomed = old.exclude(id__in=makers).order_by("id").values_list("id", flat=True)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(doomed[:BATCH])
            if not ids:
                return deleted
            deleted += GatewayOperation.objects.filter(id__in=ids).delete()[0]


def forget_departed_replicas(cutoff: datetime) -> int:
    """Forgets replicas whose stream closed before ``cutoff`` and never opened again: each pod
    of a Kubernetes gateway is a replica of its own, so without this every pod ever run would
    keep its rows. A replica that comes back reports afresh (as on every new stream).

    The connection rows are locked first: a stream opening for one of them meanwhile waits
    for this transaction, then writes its row anew, and its ACKs come after that."""
    forgotten = 0
    while True:
        with transaction.atomic():
            rows = list(
                ReplicaConnection.objects.select_for_update(skip_locked=True)
                .filter(connected=False, changed_at__lt=cutoff)
                .order_by("id")
                .values_list("id", "gateway_id", "node_id")[:BATCH]
            )
            if not rows:
                return forgotten
            by_gateway: dict[int, list[str]] = {}
            for _, gateway_id, node_id in rows:
                by_gateway.setdefault(gateway_id, []).append(node_id)
            for gateway_id, node_ids in sorted(by_gateway.items()):
                ReplicaStatus.objects.filter(gateway_id=gateway_id, node_id__in=node_ids).delete()
            forgotten += ReplicaConnection.objects.filter(id__in=[row[0] for row in rows]).delete()[
                0
            ]
