"""What the operators' health page shows: Celery workers, the broker's queue depth, the xDS
servers and local runtime agents the database knows of, and recent failed operations.

Everything that talks to the broker is bounded (``BROKER_TIMEOUT`` to reach it, ``PING_TIMEOUT``
for workers to answer, the whole probe cut off after ``PROBE_LIMIT``), so the page renders fast
even when the broker is down: it then says "unreachable". The rest are database reads.
"""

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from provisioning.models import GatewayOperation, ReplicaConnection, ReplicaIncarnation

BROKER_TIMEOUT = 0.5  # seconds to connect to (and hear from) the broker
PING_TIMEOUT = 0.5  # seconds workers have to answer a ping
PROBE_LIMIT = 1.0  # seconds the whole worker probe may take
STALE_AFTER = timedelta(minutes=5)  # an agent not heard from for this long is shown stale
RECENT_FAILURES = 10
# kombu's Redis transport keeps a queue's priorities 3, 6 and 9 in lists of their own.
_PRIORITY_SEPARATOR = "\x06\x16"


@dataclass
class BrokerState:
    kind: str  # "redis" or "filesystem" (the embedded broker), or the URL's scheme
    reachable: bool
    queue: str
    depth: int | None = None  # messages waiting in the queue
    message: str = ""
    heal_queue: str = ""
    heal_depth: int | None = None  # the periodic heal's reconciles waiting
    fanout_queue: str = ""
    fanout_depth: int | None = None  # reconciles of writes to many gateways waiting


@dataclass
class WorkerState:
    answered: bool  # whether the probe finished (False: broker unreachable or too slow)
    workers: list[str] = field(default_factory=list)
    message: str = ""


def _broker_url() -> str:
    return settings.CELERY_BROKER_URL


def _redis_depth(url: str, queue: str) -> int:
    import redis

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )
    try:
        names = [queue] + [f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in (3, 6, 9)]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(prefix + name)
        return sum(pipe.execute())
    finally:
        client.close()


def _filesystem_depth(queue: str) -> int:
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
    suffix = f".{queue}.msg"
    return sum(1 for name in os.listdir(folder) if name.endswith(suffix))


def broker_state() -> BrokerState:
    url = _broker_url()
    queue = settings.GANTRY_CELERY_QUEUE
    names = {
        "fanout_queue": settings.GANTRY_CELERY_FANOUT_QUEUE,
        "heal_queue": settings.GANTRY_CELERY_HEAL_QUEUE,
    }
    scheme = urlsplit(url).scheme or url
    if scheme in ("redis", "rediss"):
        kind, read = "redis", lambda name: _redis_depth(url, name)
    elif scheme == "filesystem":
        kind, read = "filesystem", _filesystem_depth
    else:
        message = "queue depth is not read for this broker"
        return BrokerState(scheme, True, queue, None, message, **names)
    try:
        main, fanout, heal = [read(name) for name in (queue, *names.values())]
    except Exception as error:  # noqa: BLE001 — any failure to read it is "unreachable"
        return BrokerState(scheme, False, queue, None, _reason(error), **names)
    return BrokerState(kind, True, queue, main, "", fanout_depth=fanout, heal_depth=heal, **names)


def _reason(error: Exception) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"no answer within {BROKER_TIMEOUT} s"
    text = str(error) or type(error).__name__
    return text.split("\n", 1)[0][:200]


def _ping(result: dict) -> None:
    from config.celery_app import app

    try:
        # The app's own connection pool: a fresh connection per ping costs about half a second.
        replies = app.control.ping(timeout=PING_TIMEOUT)
        result["workers"] = sorted(name for reply in replies for name in reply)
    except Exception as error:  # noqa: BLE001
        result["error"] = _reason(error)


def worker_state(broker: BrokerState) -> WorkerState:
    """The workers that answer a ping; none asked when the broker is unreachable."""
    if not broker.reachable:
        return WorkerState(False, message="not asked: the broker is unreachable")
    result: dict = {}
    probe = threading.Thread(target=_ping, args=(result,), daemon=True)
    probe.start()
    probe.join(PROBE_LIMIT)
    if probe.is_alive():
        return WorkerState(False, message=f"no worker answered within {PROBE_LIMIT} s")
    if "error" in result:
        return WorkerState(False, message=result["error"])
    workers = result.get("workers", [])
    message = "" if workers else f"no worker answered within {PING_TIMEOUT} s"
    return WorkerState(True, workers, message)


def xds_servers() -> list[dict]:
    """Each xDS server that has held a stream: open streams now, and its last change."""
    return list(
        ReplicaConnection.objects.exclude(server="")
        .values("server")
        .annotate(streams=Count("id", filter=Q(connected=True)), last_change=Max("changed_at"))
        .order_by("server")
    )


def local_agents() -> list[dict]:
    """Each local runtime agent (by its runtime directory) with replicas running: how many,
    and when it last reported them (stale when long ago)."""
    rows = list(
        ReplicaIncarnation.objects.filter(stopped_at__isnull=True, runtime="local")
        .values("location")
        .annotate(replicas=Count("id"), last_seen=Max("last_seen_at"))
        .order_by("location")
    )
    now = timezone.now()
    for row in rows:
        row["stale"] = row["last_seen"] is not None and now - row["last_seen"] > STALE_AFTER
    return rows


def failed_operations():
    return (
        GatewayOperation.objects.filter(state=GatewayOperation.State.FAILED)
        .select_related("gateway__tenant")
        .only(
            "kind", "message", "started_at", "finished_at", "gateway__name", "gateway__tenant__slug"
        )  # fmt: skip
        .order_by("-started_at", "-id")[:RECENT_FAILURES]
    )
