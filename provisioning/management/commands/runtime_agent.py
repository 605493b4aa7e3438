"""``manage.py runtime_agent``: runs the Envoy replicas of every ``local`` gateway."""

import signal

from django.core.management.base import BaseCommand

from provisioning.runtimes.local.agent import Agent


class Command(BaseCommand):
    help = "Run and supervise the Envoy replicas of gateways whose runtime is local."

    def add_arguments(self, parser):
        parser.add_argument("--xds-address", help="default: GANTRY_XDS_ADDRESS")
        parser.add_argument("--xds-port", type=int, help="default: GANTRY_XDS_PORT")

    def handle(self, *args, xds_address=None, xds_port=None, **options):
        stopping = []

        def stop(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        agent = Agent(xds_address=xds_address, xds_port=xds_port)
        agent.run(lambda: bool(stopping))
