"""Celery reconcilers. They take ids, store no results, and are idempotent: running one twice,
or two at once, leaves the same revisions as running it once."""

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, transaction

from gateways.models import Gateway
from provisioning.runtimes.kubernetes.client import KubernetesError as TransientKubernetesError

log = logging.getLogger(__name__)


@shared_task(
    name="provisioning.reconcile_gateway",
    acks_late=True,
    ignore_result=True,
    time_limit=300,
    soft_time_limit=240,
    # The database went away, or a Kubernetes API server had a transient failure (the driver
    # raises only those; permanent refusals become the gateway's condition): try again.
    autoretry_for=(OperationalError, TransientKubernetesError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def reconcile_gateway(
    gateway_id: int, record_unchanged: bool = True, enqueued_at: float | None = None
) -> str:
    """Compiles, validates and stores a new revision if the output changed. A deleted gateway
    is a no-op."""
    from provisioning.reconcile import reconcile

    outcome = reconcile(gateway_id, record_unchanged=record_unchanged, enqueued_at=enqueued_at)
    return outcome.result


# Its limits are its own and consistent (soft below hard): a soft limit above the hard one, as
# the global default would give, makes every send from beat fail with a ValueError.
@shared_task(
    name="provisioning.reconcile_all", ignore_result=True, time_limit=120, soft_time_limit=100
)
def reconcile_all() -> int:
    """The periodic heal (beat, every ``GANTRY_RECONCILE_ALL_SECONDS``): one reconcile per
    gateway, so a lost message, a crashed worker or drift converges. They wait in the heal
    queue, which workers read only when no tenant's change is waiting. While reconciles of the
    last pass still wait there, a pass is skipped: passes never pile up, however many gateways
    (the heal then comes as often as the workers get through one)."""
    waiting = heal_backlog()
    if waiting:
        log.info(
            "the last heal pass still has %d reconciles waiting: this pass is skipped", waiting
        )
        return 0
    count = 0
    for gateway_id in Gateway.objects.values_list("pk", flat=True).iterator():
        send_reconcile(gateway_id, record_unchanged=False, queue=settings.GANTRY_CELERY_HEAL_QUEUE,
                       priority=HEAL_PRIORITY)  # fmt: skip
        count += 1
    log.info("enqueued %d gateway reconciles", count)
    return count


def heal_backlog() -> int:
    """How many reconciles wait in the heal queue (taken by a worker: no longer waiting)."""
    from celery import current_app
    from kombu import Queue

    name = settings.GANTRY_CELERY_HEAL_QUEUE
    queue = current_app.amqp.queues.get(name) or Queue(name, routing_key=name)
    with current_app.connection_for_read() as connection:
        # Declared as workers declare it (a passive declare misses a Redis key prefix).
        return queue(connection.default_channel).queue_declare().message_count


# Message priorities over Redis (kombu's steps 0, 3, 6 and 9; 0 is taken first). A worker's
# BRPOP names each priority of every queue before the next priority: main:0, fan-out:0,
# heal:0, main:3, … So the heal's reconciles are sent at the last step, and a fan-out's at a
# step by its size: a small fan-out is not queued behind a big one (another tenant's with a
# thousand gateways). The embedded broker takes each queue in order and ignores priorities.
HEAL_PRIORITY = 9
FANOUT_PRIORITIES = ((10, 0), (100, 3), (1000, 6))  # (up to this many gateways, priority)


def fanout_priority(gateways: int) -> int:
    """The priority of each reconcile of a write that reconciles ``gateways`` gateways."""
    return next((step for most, step in FANOUT_PRIORITIES if gateways <= most), HEAL_PRIORITY)


def send_reconcile(
    gateway_id: int,
    record_unchanged: bool = True,
    queue: str | None = None,
    fanout: bool = False,
    priority: int | None = None,
) -> None:
    """Sends a reconcile of the gateway: for a write (no ``queue``), only if none sent for an
    earlier write is still waiting to begin (``provisioning.pending``). ``fanout``: the write
    reconciles many gateways; its reconciles go to the fan-out queue, which workers read only
    when no single gateway's change is waiting. ``priority``: the message's (above); a
    write's in the main queue gets its tenant's (``provisioning.fair_share``)."""
    from provisioning import fair_share, pending

    claimed = queue is None and pending.claim(gateway_id, fanout)
    if queue is None and not claimed:
        return  # the reconcile waiting will read this write
    shared = queue is None and not fanout  # a write's, in the main queue: the tenant's share
    if queue is None:
        queue = settings.GANTRY_CELERY_FANOUT_QUEUE if fanout else settings.GANTRY_CELERY_QUEUE
    try:
        if shared:
            priority = fair_share.priority(gateway_id)
        reconcile_gateway.apply_async(
            (gateway_id,),
            {"record_unchanged": record_unchanged, "enqueued_at": time.time()},
            queue=queue,
            priority=priority,
        )
    except Exception:
        if claimed:  # nothing was sent: the next write must not wait for it
            pending.release(gateway_id)
        raise


def enqueue_reconcile(*gateway_ids: int) -> None:
    """After the current transaction commits (never for a write that rolled back): one
    reconcile per gateway; in the fan-out queue when the write reconciles more than one
    (``send_reconcile``), so a tenant-wide write never holds up another gateway's change."""
    unique = list(dict.fromkeys(gateway_ids))
    transaction.on_commit(lambda: send_reconciles(unique))


def send_reconciles(gateway_ids: list[int]) -> None:
    """One reconcile per gateway: ``send_reconcile``'s, to the fan-out queue when there are
    more than one, at the priority of their number."""
    fanout = len(gateway_ids) > 1
    priority = fanout_priority(len(gateway_ids)) if fanout else None
    for gateway_id in gateway_ids:
        send_reconcile(gateway_id, fanout=fanout, priority=priority)


def enqueue_reconcile_tenant(tenant_id: int) -> None:
    """Certificates and consumers: every gateway of the tenant (simple, and always enough)."""
    enqueue_reconcile(*Gateway.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True))


def enqueue_reconcile_using(tenant_id: int, backend: str) -> None:
    """A backend's write: after the commit, one reconcile per gateway of the tenant whose
    desired state loads the backend (``desired.gateways_using``), so a tenant's backend change
    queues no reconcile of its gateways that never use it. Found after the commit, not before:
    a route write naming the backend that commits meanwhile is either found, or committed
    after this write, and then its own reconcile reads this write."""
    from provisioning.desired import gateways_using

    transaction.on_commit(lambda: send_reconciles(list(gateways_using(tenant_id, backend))))


@shared_task(
    name="provisioning.remove_kubernetes_gateway",
    acks_late=True,
    ignore_result=True,
    time_limit=300,
    autoretry_for=(OperationalError, TransientKubernetesError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def remove_kubernetes_gateway(tenant: str, gateway: str, cluster_id: int) -> int:
    """Deletes a deleted gateway's objects from the cluster it was placed on (and the tenant's
    namespace with its last gateway there). Takes names: the row is gone."""
    from provisioning.models import KubernetesCluster
    from provisioning.runtimes.kubernetes import driver

    cluster = KubernetesCluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return 0
    return len(driver.remove(tenant, gateway, cluster))


def enqueue_removal(tenant: str, gateway: str, cluster_id: int) -> None:
    transaction.on_commit(
        lambda: remove_kubernetes_gateway.apply_async(
            (tenant, gateway, cluster_id), queue=settings.GANTRY_CELERY_QUEUE
        )
    )


@shared_task(name="provisioning.prune_access_logs", ignore_result=True, time_limit=600)
def prune_access_logs() -> int:
    """Deletes access log entries older than their tenant's plan keeps them (beat, hourly)."""
    from provisioning.access_logs import prune

    return prune()


@shared_task(name="provisioning.prune_timeline", ignore_result=True, time_limit=600)
def prune_timeline() -> int:
    """Deletes timeline entries past ``GANTRY_TIMELINE_RETENTION_DAYS`` and forgets replicas
    gone for ``GANTRY_DEPARTED_REPLICA_HOURS`` (beat, every 6 hours)."""
    from provisioning.retention import prune

    pruned = prune()
    log.info("pruned %d timeline entries and %d departed replicas", pruned.operations,
             pruned.replicas)  # fmt: skip
    return pruned.operations


@shared_task(
    name="provisioning.collect_pod_access_logs", ignore_result=True, time_limit=300,
    soft_time_limit=240,
)  # fmt: skip
def collect_pod_access_logs() -> int:
    """Reads the new access log lines of every Kubernetes gateway's pods from the pods' logs
    (beat, every ``GANTRY_POD_ACCESS_LOG_SECONDS``); how many entries were stored."""
    from provisioning.pod_logs import collect

    result = collect()
    log.info("access logs: %d entries from %d pods (%d reads)", result.entries, result.pods,
             result.reads)  # fmt: skip
    return result.entries


@shared_task(
    name="provisioning.refresh_backend_names", ignore_result=True, time_limit=120,
    soft_time_limit=100,
)  # fmt: skip
def refresh_backend_names() -> int:
    """Resolves again the backend host names whose answer expired (local runtime; beat, every
    ``GANTRY_DNS_REFRESH_SECONDS``) and reconciles the gateways where one changed."""
    from provisioning.pinned_dns import refresh_expired

    return len(refresh_expired())
