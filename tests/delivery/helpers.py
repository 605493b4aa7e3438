"""Gateways with a route and a backend, built through the services as the API would; a real
Celery worker on this test's database and the real Redis broker."""

import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from gateways import services
from gateways.models import Gateway
from tenants.audit import Actor

ACTOR = Actor.system("tests")
BACKEND_SPEC = {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 8080}}]}


def route_spec(prefix: str = "/api") -> dict:
    return {
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
             "backendRefs": [{"name": "api"}]}
        ]
    }  # fmt: skip


def gateway_with_route(tenant, name: str = "edge") -> Gateway:
    gateway = services.create_gateway(ACTOR, tenant, name, {})
    services.create_backend(ACTOR, tenant, "api", BACKEND_SPEC)
    services.create_route(ACTOR, gateway, "api", route_spec())
    return gateway


ROOT = Path(__file__).resolve().parent.parent.parent


def use_queue(settings, queue: str) -> None:
    """This process sends to ``queue`` and its fan-out and heal queues, named as a worker
    started with ``GANTRY_CELERY_QUEUE=<queue>`` names the queues it reads."""
    settings.GANTRY_CELERY_QUEUE = queue
    settings.GANTRY_CELERY_FANOUT_QUEUE = f"{queue}.fanout"
    settings.GANTRY_CELERY_HEAL_QUEUE = f"{queue}.heal"


def start_worker(log: Path, queue: str, *options: str) -> subprocess.Popen:
    """A solo Celery worker reading ``queue`` (and its fan-out and heal queues,
    ``<queue>.fanout`` and ``<queue>.heal``, unless ``options`` say ``-Q``), its output in
    ``log``."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "GANTRY_CELERY_QUEUE": queue,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", *options,
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_worker(worker: subprocess.Popen, log: Path) -> str:
    """Stops the worker; its output."""
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)
    return log.read_text()


def wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    return predicate()
