"""``manage.py ratelimit_server``: the global rate limit service gateways' Envoys ask."""

import asyncio
import logging
import signal

import grpc
from django.conf import settings
from django.core.management.base import BaseCommand

from provisioning.ratelimit.counters import MemoryCounters, RedisCounters
from provisioning.ratelimit.service import add_to

log = logging.getLogger(__name__)
GRACE_SECONDS = 1.0


def counters_from_settings():
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL, f"{settings.CACHE_KEY_PREFIX}")
    return MemoryCounters()


async def serve(address: str, port: int, counters=None, ready=None) -> None:
    counters = counters or counters_from_settings()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    add_to(server, counters)
    bound = server.add_insecure_port(f"{address}:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        log.info("ratelimit: ready on %s:%s (counts in %s)", address, bound,
                 type(counters).__name__)  # fmt: skip
        if ready is not None:
            ready(bound)
        await stop.wait()
        log.info("ratelimit: stopping")
    finally:
        await server.stop(GRACE_SECONDS)
        await counters.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


class Command(BaseCommand):
    help = "Serve gateways' global rate limits (Envoy's rate limit service protocol, gRPC)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.GANTRY_RATELIMIT_PORT)
        parser.add_argument("--address", default=settings.GANTRY_RATELIMIT_ADDRESS)

    def handle(self, *args, port: int, address: str, **options):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        asyncio.run(serve(address, port))
