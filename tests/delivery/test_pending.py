"""A burst of writes to one gateway sends one reconcile, not one per write: a write that finds a
reconcile of its gateway sent and not yet begun sends none, since that one will read it. Over
the real Redis broker, then a real worker."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Queue

from gateways import services
from provisioning import revisions
from provisioning.models import ConfigRevision, GatewayOperation, PendingReconcile
from tests.delivery.helpers import (
    ACTOR,
    BACKEND_SPEC,
    route_spec,
    start_worker,
    stop_worker,
    use_queue,
    wait_for,
)


def waiting(queue: str) -> int:
    """Messages in ``queue`` of the real broker."""
    from config.celery_app import app

    with app.connection_for_read() as broker:
        return Queue(queue, routing_key=queue)(broker.default_channel).queue_declare().message_count


def routes_served(gateway) -> int:
    revision = ConfigRevision.objects.filter(gateway=gateway, current=True).first()
    return len(revisions.desired_state_of(revision)["routes"]) if revision else -1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_writes_to_a_gateway_sends_one_reconcile(org, settings, tmp_path):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)  # where this process sends; the worker reads it
    edge = services.create_gateway(ACTOR, org.tenant, "edge", {})
    services.create_backend(ACTOR, org.tenant, "api", BACKEND_SPEC)  # every gateway's
    for number in range(30):
        services.create_route(ACTOR, edge, f"r{number}", route_spec(f"/r{number}"))
    assert waiting(queue) == 1  # 32 writes, one reconcile waiting
    other = services.create_gateway(ACTOR, org.tenant, "other", {})
    assert waiting(queue) == 2  # another gateway's write is its own
    # A mark older than GANTRY_RECONCILE_PENDING_SECONDS is a message taken for lost.
    PendingReconcile.objects.filter(gateway=other).update(
        sent_at=timezone.now() - timedelta(seconds=settings.GANTRY_RECONCILE_PENDING_SECONDS + 1)
    )
    services.replace_gateway_spec(ACTOR, other, {"replicas": 2})
    assert waiting(queue) == 3

    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)
    try:
        assert wait_for(lambda: routes_served(edge) == 30 and waiting(queue) == 0, 60), (
            log.read_text()[-3000:]
        )
        assert GatewayOperation.objects.filter(gateway=edge).count() == 1  # one reconcile
        # That reconcile began: the next write sends one of its own.
        services.create_route(ACTOR, edge, "late", route_spec("/late"))
        assert wait_for(lambda: routes_served(edge) == 31, 60), log.read_text()[-3000:]
        assert GatewayOperation.objects.filter(gateway=edge).count() == 2
    finally:
        stop_worker(worker, log)
    assert not PendingReconcile.objects.exists()
