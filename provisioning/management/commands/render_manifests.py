"""``manage.py render_manifests --tenant T --gateway G [--cluster C]``: the Kubernetes objects
of a gateway (and of its tenant's namespace) as YAML, without touching any cluster.

No object holds an xDS token: each pod enrolls with the xDS server for its own (the init
container), so nothing here issues, rotates or prints one.
"""

from django.core.management.base import BaseCommand, CommandError

from gateways.models import Gateway
from provisioning.models import KubernetesCluster
from provisioning.runtimes.kubernetes import desired
from provisioning.runtimes.kubernetes.render import render_gateway, render_tenant, to_yaml


class Command(BaseCommand):
    help = "Print the Kubernetes manifests of a gateway (they hold no xDS token)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--gateway", required=True)
        parser.add_argument("--cluster", default="", help="default: the first the plan may use")

    def handle(self, tenant, gateway, cluster, **options):
        found = (
            Gateway.objects.select_related("tenant__plan")
            .filter(tenant__slug=tenant, name=gateway)
            .first()
        )
        if found is None:
            raise CommandError(f"no gateway {gateway!r} in tenant {tenant!r}")
        try:
            target = (
                KubernetesCluster.objects.get(name=cluster)
                if cluster
                else desired.cluster_for(found.tenant)
            )
        except (KubernetesCluster.DoesNotExist, desired.NoCluster) as error:
            raise CommandError(str(error) if cluster == "" else f"no cluster {cluster!r}") from None
        objects = render_tenant(desired.tenant_input(found.tenant)) + render_gateway(
            desired.gateway_input(found, target), desired.cluster_settings(target)
        )
        self.stdout.write(to_yaml(objects), ending="")
