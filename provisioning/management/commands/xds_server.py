"""``manage.py xds_server``: the ADS server for every gateway, reading config revisions."""

import asyncio
import logging
import os
import signal

from django.core.management.base import BaseCommand

from provisioning.xds.db import DatabaseThreads
from provisioning.xds.db_source import DatabaseSnapshotSource
from provisioning.xds.enrollment import EnrollmentService
from provisioning.xds.metrics import MetricsService
from provisioning.xds.replicas import (
    AckRecorder,
    Authenticator,
    ConnectionRecorder,
    forget_server,
    server_name,
)
from provisioning.xds.server import AggregatedDiscoveryService, XdsServer

log = logging.getLogger(__name__)
GRACE_SECONDS = 1.0
READ_THREADS = 2


async def serve(address: str, port: int, ready=None) -> None:
    """Serves until SIGTERM or SIGINT, then closes the streams (Envoys keep their config)."""
    database = DatabaseThreads()
    # Reads of changed revisions on threads (and connections) of their own: a change is never
    # queued behind the ACKs and receipts a whole fleet reconnecting makes the server write.
    reads = DatabaseThreads(workers=READ_THREADS)
    source = DatabaseSnapshotSource(database=reads, local_port=port or None)
    connections = ConnectionRecorder(database, server_name(port))
    service = AggregatedDiscoveryService(
        source, Authenticator(database), AckRecorder(database), connections
    )
    # Kubernetes gateway pods enroll on the same port (their only way into the platform), in
    # threads of their own: a slow API server never holds up token checks and ACKs.
    enrollment_threads = DatabaseThreads(workers=2)
    enrollment = EnrollmentService(enrollment_threads)
    # The pods push their usage counters on it too (``provisioning.xds.metrics``).
    metrics = MetricsService(database)
    handlers = (enrollment.handler(), metrics.handler())
    server = XdsServer(service, address, port, handlers=handlers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await source.start()
        bound = await server.start()
        connections.server = server_name(bound)
        # Streams this server held before it was killed are gone; their Envoys reconnect.
        await database.run(forget_server, connections.server)
        log.info(
            "xds: ready on %s:%s (poll every %s s, change notifications: %s)",
            address, bound, source.poll_interval, source.notifier,
        )  # fmt: skip
        if ready is not None:
            ready(bound)
        await stop.wait()
        log.info("xds: stopping")
    finally:
        await server.stop(GRACE_SECONDS)
        await service.drain_reports()
        await source.close()
        await loop.run_in_executor(None, database.close)
        await loop.run_in_executor(None, reads.close)
        await loop.run_in_executor(None, enrollment_threads.close)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


class Command(BaseCommand):
    help = "Serve Envoy replicas their gateway's current config revision over ADS (gRPC)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("GANTRY_XDS_PORT") or 18000)
        )
        parser.add_argument("--address", default="127.0.0.1")

    def handle(self, *args, port: int, address: str, **options):
        asyncio.run(serve(address, port))
