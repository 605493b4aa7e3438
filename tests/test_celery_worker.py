"""A real Celery worker, over the real Redis broker, runs the periodic tasks against the real
database: no eager mode, so serialisation and transaction visibility are exercised."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from tenants.models import AuditEvent

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_prunes_old_audit_events(org):
    AuditEvent.objects.filter(tenant=org.tenant).update(
        created_at=timezone.now() - timedelta(days=settings.GANTRY_AUDIT_RETENTION_DAYS + 1)
    )
    keep = AuditEvent.objects.create(actor_name="x", action="create", object_type="t",
                                     object_name="recent")  # fmt: skip
    db = settings.DATABASES["default"]
    queue = f"gantry-test-{os.urandom(4).hex()}"
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.REDIS_URL,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", queue,
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        from tenants.tasks import prune_audit_events

        prune_audit_events.apply_async(queue=queue)
        deadline = time.monotonic() + 30
        while AuditEvent.objects.exclude(pk=keep.pk).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not AuditEvent.objects.exclude(pk=keep.pk).exists()
        assert AuditEvent.objects.filter(pk=keep.pk).exists()
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=20)
    assert "pruned" in output
