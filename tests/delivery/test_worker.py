"""A real Celery worker over the real Redis broker turns an API write into a new revision: the
write enqueues on commit, the worker compiles, validates with Envoy and stores. No eager mode."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from provisioning.models import ConfigRevision
from tenants.roles import Role
from tests.delivery.helpers import BACKEND_SPEC, route_spec

ROOT = Path(__file__).resolve().parent.parent.parent
BASE = "/api/v1/tenants/acme/"


def wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    return predicate()


def current_routes() -> list[str]:
    revision = ConfigRevision.objects.filter(gateway__name="edge", current=True).first()
    return [r["name"] for r in revision.desired_state["routes"]] if revision else []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_route_created_through_the_api_becomes_a_valid_revision(org, settings):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    settings.GANTRY_CELERY_QUEUE = queue  # what producers send to; the worker's env says the same
    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": django_settings.REDIS_URL,
        "GANTRY_CELERY_QUEUE": queue,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        editor = org.client(Role.EDITOR)
        assert editor.post(BASE + "gateways/", {"name": "edge"}, format="json").status_code == 202
        assert (
            editor.post(
                BASE + "backends/", {"name": "api", "spec": BACKEND_SPEC}, format="json"
            ).status_code
            == 202
        )
        assert wait_for(lambda: ConfigRevision.objects.filter(gateway__name="edge").exists(), 30)
        before = ConfigRevision.objects.filter(gateway__name="edge").count()

        started = time.monotonic()
        response = editor.post(
            BASE + "gateways/edge/routes/", {"name": "api", "spec": route_spec()}, format="json"
        )
        assert response.status_code == 202
        assert wait_for(lambda: current_routes() == ["api"], 10)
        elapsed = time.monotonic() - started
        revision = ConfigRevision.objects.get(gateway__name="edge", current=True)
        assert revision.state == "valid" and revision.number > before
        assert elapsed < 10
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=20)
    assert "provisioning.reconcile_gateway" in output
