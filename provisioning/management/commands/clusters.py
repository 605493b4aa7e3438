"""``manage.py clusters list|register|test|delete``: the Kubernetes clusters gateways run on,
through the same services as the API and the operators' console (validated and audited).

Exit codes: 0 done (``test``: the API server answered and accepted the credentials); 1 the
request was refused (bad input, a cluster that still runs gateways, no such cluster) or the
connection test failed; 2 wrong usage (Django's).
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from config.errors import GantryError, ValidationFailed
from provisioning import cluster_services as services
from provisioning.cluster_views import clusters
from tenants.audit import Actor

ACTOR = Actor.system("manage.py clusters")


def _refusal(error: GantryError) -> str:
    if isinstance(error, ValidationFailed):
        return "; ".join(f"{field.path or '(input)'}: {field.message}" for field in error.fields)
    return error.message


class Command(BaseCommand):
    help = "List, register, test and delete the Kubernetes clusters gateways run on."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        listing = verbs.add_parser("list", help="every cluster, its plans and gateways")
        listing.add_argument("--json", action="store_true", help="one JSON document")

        register = verbs.add_parser("register", help="register a cluster")
        register.add_argument("name")
        source = register.add_mutually_exclusive_group(required=True)
        source.add_argument("--kubeconfig", help="a kubeconfig file ('-': standard input)")
        source.add_argument("--in-cluster", action="store_true",
                            help="use the service account Gantry runs as")  # fmt: skip
        register.add_argument("--context", default="", help="kubeconfig context (default: current)")
        register.add_argument("--exposure", default="LoadBalancer",
                              choices=["LoadBalancer", "NodePort"])  # fmt: skip
        register.add_argument("--envoy-image", default="")
        register.add_argument("--xds-address", required=True)
        register.add_argument("--xds-port", type=int, default=18000)
        register.add_argument("--plan", action="append", default=[], dest="plans",
                              help="a plan that may use it (repeat for more)")  # fmt: skip

        test = verbs.add_parser("test", help="call the cluster's API server with its credentials")
        test.add_argument("name")

        delete = verbs.add_parser("delete", help="delete a cluster no gateway runs on")
        delete.add_argument("name")

    def handle(self, *args, verb, **options):
        try:
            getattr(self, f"do_{verb}")(**options)
        except GantryError as error:
            raise CommandError(_refusal(error), returncode=1) from None

    def do_list(self, json=False, **options):
        rows = [
            {"name": c.name, "inCluster": c.in_cluster, "exposure": c.exposure,
             "xds": f"{c.xds_address}:{c.xds_port}", "plans": sorted(p.name for p in c.plans.all()),
             "gateways": c.gateway_count}
            for c in clusters().order_by("name")
        ]  # fmt: skip
        if json:
            self.stdout.write(_json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no clusters")
            return
        header = ("NAME", "CREDENTIALS", "EXPOSURE", "XDS", "PLANS", "GATEWAYS")
        lines = [header] + [
            (r["name"], "in-cluster" if r["inCluster"] else "kubeconfig", r["exposure"], r["xds"],
             ",".join(r["plans"]) or "-", str(r["gateways"]))
            for r in rows
        ]  # fmt: skip
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            cells = (value.ljust(width) for value, width in zip(line, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())

    def do_register(self, name, kubeconfig, in_cluster, context, exposure, envoy_image,
                    xds_address, xds_port, plans, **options):  # fmt: skip
        text = ""
        if kubeconfig == "-":
            text = sys.stdin.read()
        elif kubeconfig:
            try:
                with open(kubeconfig, encoding="utf-8") as file:
                    text = file.read()
            except OSError as error:
                message = f"cannot read {kubeconfig}: {error.strerror}"
                raise CommandError(message, returncode=1) from None
        fields = {"name": name, "in_cluster": in_cluster, "kubeconfig": text, "context": context,
                  "exposure": exposure, "xds_address": xds_address, "xds_port": xds_port,
                  "plans": plans}  # fmt: skip
        if envoy_image:
            fields["envoy_image"] = envoy_image
        cluster = services.register_cluster(ACTOR, fields)
        self.stdout.write(f"registered cluster {cluster.name}")

    def do_test(self, name, **options):
        result = services.test_connection(ACTOR, services.get_cluster(name))
        if not result.ok:
            raise CommandError(f"cluster {name}: {result.message}", returncode=1)
        self.stdout.write(f"cluster {name}: {result.message} ({result.latency_ms} ms)")

    def do_delete(self, name, **options):
        services.delete_cluster(ACTOR, services.get_cluster(name))
        self.stdout.write(f"deleted cluster {name}")


_json = json
