"""A burst of writes to one gateway sends one reconcile, not one per write: a write that finds a
reconcile of its gateway sent and not yet begun sends none, since that one will read it. Over
the real Redis broker, then a real worker."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from kombu import Queue

from gateways import services
from provisioning import revisions
from provisioning.models import ConfigRevision, GatewayOperation, PendingReconcile
from tests.delivery.helpers import ACTOR, BACKEND_SPEC, route_spec

ROOT = Path(__file__).resolve().parent.parent.parent


def waiting(queue: str) -> int:
    """Messages in ``queue`` of the real broker."""
    from config.celery_app import app

    with app.connection_for_read() as broker:
        return Queue(queue, routing_key=queue)(broker.default_channel).queue_declare().message_count


def routes_served(gateway) -> int:
    revision = ConfigRevision.objects.filter(gateway=gateway, current=True).first()
    return len(revisions.desired_state_of(revision)["routes"]) if revision else -1


def wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_writes_to_a_gateway_sends_one_reconcile(org, settings, tmp_path):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    settings.GANTRY_CELERY_QUEUE = queue  # where this process sends; the worker reads it
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

    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": django_settings.REDIS_URL,
        "GANTRY_CELERY_QUEUE": queue,
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
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
        worker.terminate()
        worker.wait(30)
    assert not PendingReconcile.objects.exists()
