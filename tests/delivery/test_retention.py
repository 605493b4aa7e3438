"""What the platform keeps of its past: timeline entries for ``GANTRY_TIMELINE_RETENTION_DAYS``
(with the entry that made each kept revision), and replicas whose stream closed long ago are
forgotten (each Kubernetes pod is a replica of its own)."""

import os
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from frontend.history import revisions as revision_rows
from gateways import services
from provisioning import retention
from provisioning.models import GatewayOperation, ReplicaConnection, ReplicaStatus
from provisioning.reconcile import reconcile
from tests.delivery.helpers import (
    ACTOR,
    gateway_with_route,
    route_spec,
    start_worker,
    stop_worker,
)

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"


def age(operation: GatewayOperation, days: float) -> None:
    GatewayOperation.objects.filter(pk=operation.pk).update(
        started_at=timezone.now() - timedelta(days=days)
    )


@pytest.mark.django_db
def test_old_timeline_entries_go_but_not_the_one_that_made_a_kept_revision(org, settings):
    settings.GANTRY_TIMELINE_RETENTION_DAYS = 30
    gateway = gateway_with_route(org.tenant)
    reconcile(gateway.pk)  # makes revision 1
    reconcile(gateway.pk)  # "no change"
    made, unchanged = GatewayOperation.objects.filter(gateway=gateway).order_by("id")
    failed = GatewayOperation.objects.create(
        gateway=gateway, kind="reconcile", state="failed", message="boom"
    )
    for operation in (made, unchanged, failed):
        age(operation, 31)
    services.replace_route_spec(ACTOR, gateway.routes.get(name="api"), route_spec("/v2"))
    reconcile(gateway.pk)  # revision 2, made today
    recent = GatewayOperation.objects.filter(gateway=gateway).order_by("-id").first()

    pruned = retention.prune()

    assert pruned.operations == 2
    kept = set(GatewayOperation.objects.filter(gateway=gateway).values_list("pk", flat=True))
    assert kept == {made.pk, recent.pk}
    # The revisions' page still says which operation made each revision.
    assert {row.number: row.operation_id for row in revision_rows(gateway)} == {
        1: made.pk, 2: recent.pk
    }  # fmt: skip


@pytest.mark.django_db
def test_replicas_whose_stream_closed_long_ago_are_forgotten(org, settings):
    settings.GANTRY_DEPARTED_REPLICA_HOURS = 24
    gateway = gateway_with_route(org.tenant)
    now = timezone.now()
    key = f"{org.tenant.slug}/{gateway.name}"
    nodes = {
        "gone": (False, now - timedelta(hours=25)),  # a pod replaced yesterday
        "just-left": (False, now - timedelta(hours=1)),
        "steady": (True, now - timedelta(days=3)),  # connected for days
    }
    for name, (connected, changed_at) in nodes.items():
        ReplicaConnection.objects.create(
            gateway=gateway, node_id=f"{key}/{name}", connected=connected, changed_at=changed_at
        )
        ReplicaStatus.objects.create(
            gateway=gateway, node_id=f"{key}/{name}", type_url=LISTENER, acked_version="v1",
            last_seen=changed_at,
        )  # fmt: skip

    assert retention.prune().replicas == 1

    left = {f"{key}/just-left", f"{key}/steady"}
    assert set(ReplicaConnection.objects.values_list("node_id", flat=True)) == left
    assert set(ReplicaStatus.objects.values_list("node_id", flat=True)) == left


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_prunes_the_timeline(org, tmp_path):
    """The task as beat sends it, through a real worker over Redis."""
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    old = GatewayOperation.objects.create(gateway=gateway, kind="reconcile", state="failed")
    age(old, django_settings.GANTRY_TIMELINE_RETENTION_DAYS + 1)
    fresh = GatewayOperation.objects.create(gateway=gateway, kind="reconcile", state="failed")
    queue = f"gantry-test-{os.urandom(4).hex()}"
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)
    try:
        from provisioning.tasks import prune_timeline

        prune_timeline.apply_async(queue=queue)
        deadline = time.monotonic() + 30
        while GatewayOperation.objects.filter(pk=old.pk).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        output = stop_worker(worker, log)
    assert not GatewayOperation.objects.filter(pk=old.pk).exists(), output[-3000:]
    assert GatewayOperation.objects.filter(pk=fresh.pk).exists()
    assert "pruned 1 timeline entries and 0 departed replicas" in output
