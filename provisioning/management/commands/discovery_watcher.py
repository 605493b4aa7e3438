"""``manage.py discovery_watcher``: follows the EndpointSlices of the Kubernetes Services that
backends name and writes their endpoints for the xDS server (docs/discovery.md)."""

import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from provisioning.discovery.watcher import DiscoveryWatcher

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Watch the EndpointSlices of the Kubernetes Services backends name (docs/discovery.md)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--refresh", type=float, default=settings.GANTRY_DISCOVERY_REFRESH_SECONDS,
            help="seconds between reads of which Services backends name",
        )  # fmt: skip
        parser.add_argument(
            "--watch-seconds", type=int, default=settings.GANTRY_DISCOVERY_WATCH_SECONDS,
            help="how long each watch request lasts before the Service is read again",
        )  # fmt: skip
        parser.add_argument(
            "--heartbeat", default=None,
            help="a file touched at every pass (for a liveness probe: a hung watcher stops)",
        )  # fmt: skip

    def handle(self, *args, refresh: float, watch_seconds: int, heartbeat, **options):
        watcher = DiscoveryWatcher(refresh=refresh, watch_seconds=watch_seconds,
                                   heartbeat=heartbeat)  # fmt: skip
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: watcher.stopping.set())
        try:
            watcher.run()
        finally:
            watcher.stop()
            log.info("discovery: stopped")
