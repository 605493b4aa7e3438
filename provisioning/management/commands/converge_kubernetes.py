"""``manage.py converge_kubernetes --tenant T --gateway G [--force]``: apply a gateway's
Kubernetes objects now and store what the cluster reports (until the reconcile does it)."""

from django.core.management.base import BaseCommand, CommandError

from gateways.models import Gateway
from provisioning.runtimes.kubernetes import driver
from provisioning.runtimes.kubernetes.client import KubernetesError
from provisioning.runtimes.kubernetes.gateway_status import store_runtime_status


class Command(BaseCommand):
    help = "Apply a gateway's objects to its Kubernetes cluster and print its runtime status."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--gateway", required=True)
        parser.add_argument("--force", action="store_true", help="apply even unchanged objects")

    def handle(self, tenant, gateway, force, **options):
        gateways = Gateway.objects.select_related("tenant__plan")
        found = gateways.filter(tenant__slug=tenant, name=gateway).first()
        if found is None:
            raise CommandError(f"no gateway {gateway!r} in tenant {tenant!r}")
        if found.spec.get("runtime") != "kubernetes":
            raise CommandError(f"gateway {tenant}/{gateway} does not have runtime kubernetes")
        try:
            runtime = driver.converge(found, force=force)
        except KubernetesError as error:
            raise CommandError(f"{error} (transient: try again)") from None
        store_runtime_status(found, runtime)
        self.stdout.write(f"{found}: {runtime.phase} — {runtime.message}")
        for listener, url in sorted(runtime.urls.items()):
            self.stdout.write(f"  {listener}: {url}")
        if runtime.phase == "Failed":
            raise CommandError(runtime.message)
