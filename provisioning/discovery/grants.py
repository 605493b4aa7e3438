"""The operator's grants: which namespaces of which registered cluster a tenant's backends may
name. Every write goes through here (the admin calls it), audited; a grant removed withdraws the
endpoints at once: the tenant's gateways are told (the xDS server checks grants whenever it
builds their endpoints) and its backends naming that namespace show ResolvedRefs=False."""

from django.db import transaction

from config.errors import ValidationFailed
from gateways.models import Backend, Gateway
from provisioning.models import DiscoveryGrant, KubernetesCluster
from tenants import audit
from tenants.audit import Actor
from tenants.models import Tenant


def usable_clusters(tenant: Tenant) -> list[KubernetesCluster]:
    """The registered clusters the tenant's plan may use, by name."""
    return list(KubernetesCluster.objects.filter(plans=tenant.plan_id).order_by("name"))


def cluster_granting(tenant: Tenant, clusters, namespace: str) -> KubernetesCluster | None:
    """The first of ``clusters`` (in order) where ``namespace`` is granted to ``tenant``."""
    granted = set(
        DiscoveryGrant.objects.filter(
            tenant=tenant, namespace=namespace, cluster__in=[c.pk for c in clusters]
        ).values_list("cluster_id", flat=True)
    )
    return next((cluster for cluster in clusters if cluster.pk in granted), None)


def is_granted(tenant_id: int, cluster_name: str, namespace: str) -> bool:
    """Whether the tenant may discover ``namespace`` of ``cluster_name`` now: granted there,
    and the cluster still one its plan may use."""
    return DiscoveryGrant.objects.filter(
        tenant_id=tenant_id,
        cluster__name=cluster_name,
        namespace=namespace,
        cluster__plans__tenants__id=tenant_id,
    ).exists()


def _snapshot(grant: DiscoveryGrant) -> dict:
    return {"cluster": grant.cluster.name, "tenant": grant.tenant.slug,
            "namespace": grant.namespace}  # fmt: skip


@transaction.atomic
def grant_namespace(actor: Actor, cluster: KubernetesCluster, tenant: Tenant, namespace: str):
    from config.validators import DNS_LABEL, DNS_LABEL_MESSAGE

    if not DNS_LABEL.match(namespace or ""):
        raise ValidationFailed.one("namespace", DNS_LABEL_MESSAGE)
    grant, created = DiscoveryGrant.objects.get_or_create(
        cluster=cluster, tenant=tenant, namespace=namespace
    )
    if created:
        audit.record(actor, "create", "discovery-grant", f"{cluster.name}/{namespace}",
                     tenant=tenant, after=_snapshot(grant))  # fmt: skip
        _changed(tenant, cluster.name, namespace)
    return grant


@transaction.atomic
def revoke_grant(actor: Actor, grant: DiscoveryGrant) -> None:
    tenant, cluster, namespace = grant.tenant, grant.cluster.name, grant.namespace
    audit.record(actor, "delete", "discovery-grant", f"{cluster}/{namespace}", tenant=tenant,
                 before=_snapshot(grant))  # fmt: skip
    grant.delete()
    _changed(tenant, cluster, namespace)


def _changed(tenant: Tenant, cluster: str, namespace: str) -> None:
    """The backends naming that namespace get their ResolvedRefs again; the tenant's gateways'
    xDS servers rebuild their endpoints (with or without the grant)."""
    from gateways.services.backends import refresh_discovery_status
    from provisioning.xds.notify import notify_changed

    naming = [
        backend
        for backend in Backend.objects.filter(tenant=tenant, spec__has_key="kubernetesService")
        if backend.spec["kubernetesService"].get("cluster") == cluster
        and backend.spec["kubernetesService"].get("namespace") == namespace
    ]
    for backend in naming:
        refresh_discovery_status(backend)
    for name in Gateway.objects.filter(tenant=tenant).values_list("name", flat=True):
        notify_changed(f"{tenant.slug}/{name}")
