"""The Kubernetes runtime driver: what a reconcile calls for a gateway whose ``runtime`` is
``kubernetes``.

``converge(gateway)`` renders and applies the tenant's and the gateway's objects on the cluster
its plan may use and returns a ``RuntimeStatus`` (phase, conditions, listener urls). A refusal
by the API server (403, 422, …) becomes a ``Failed`` status carrying its message; transient
errors that outlast the retries raise ``KubernetesError`` for the caller (a Celery retry).
``remove(tenant, gateway, cluster)`` deletes a gateway's objects, and the namespace with the
tenant's last gateway.

No xDS token goes to the cluster: each pod enrolls for its own with the xDS server
(``provisioning.xds.enrollment``). Every converge lists the gateway's pods and revokes the
tokens of pods that are gone or terminating; ``remove`` and ``leave`` revoke them all.
"""

import logging
from datetime import timedelta

import yaml
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gateways.models import Gateway
from provisioning import metering
from provisioning.models import KubernetesCluster, KubernetesPlacement, PodCredential
from provisioning.runtimes.kubernetes import apply, desired, names, status
from provisioning.runtimes.kubernetes.client import KubeApi, KubernetesError
from provisioning.xds.credentials import revoke_pod_tokens

log = logging.getLogger(__name__)
LIST_MARGIN = timedelta(seconds=5)


class UnusableCluster(Exception):
    """The cluster's credentials cannot be loaded (a broken kubeconfig, no in-cluster token)."""


def configuration_for(cluster: KubernetesCluster) -> k8s.Configuration:
    configuration = k8s.Configuration()
    try:
        if cluster.in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config_from_dict(
                yaml.safe_load(cluster.kubeconfig),
                context=cluster.context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except (k8s_config.ConfigException, yaml.YAMLError, TypeError, AttributeError) as error:
        raise UnusableCluster(f"cluster {cluster.name}: {error}") from None
    return configuration


def api_for(cluster: KubernetesCluster) -> KubeApi:
    return KubeApi(k8s.ApiClient(configuration_for(cluster)))


def live_pods(api: KubeApi, tenant: str, gateway: str) -> list[tuple[str, str]]:
    """``(name, uid)`` of the gateway's pods that exist and are not terminating."""
    pods = api.list("Pod", names.namespace(tenant), names.gateway_selector(tenant, gateway))
    return [
        (pod["metadata"]["name"], pod["metadata"].get("uid", ""))
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
    ]


def revoke_gone_pods(api: KubeApi, gateway: Gateway) -> list[str]:
    """Revokes the xDS tokens of the gateway's pods that are gone or terminating (a pod that
    comes back under the same name is another incarnation: another uid, so revoked too)."""
    if not PodCredential.objects.filter(gateway=gateway).exists():
        return []
    # Tokens issued after this (to a pod the list may miss) are left for the next converge;
    # the margin covers clocks of the xDS servers a little ahead of this one.
    listed_at = timezone.now() - LIST_MARGIN
    pods = live_pods(api, gateway.tenant.slug, gateway.name)
    revoked = revoke_pod_tokens(gateway.pk, pods, issued_before=listed_at)
    if revoked:
        log.info("kubernetes: revoked the xDS tokens of %s (pods gone)", ", ".join(revoked))
        # Their usage runs end at their last flush (a live pod's own run is never touched).
        metering.close_pods(revoked, keep={uid for _, uid in pods})
    return revoked


def _placement(gateway: Gateway) -> KubernetesPlacement | None:
    return KubernetesPlacement.objects.filter(gateway=gateway).select_related("cluster").first()


def converge(
    gateway: Gateway, *, api: KubeApi | None = None, force: bool = False
) -> status.RuntimeStatus:
    placement = (
        KubernetesPlacement.objects.filter(gateway=gateway).select_related("cluster").first()
    )
    try:
        cluster = desired.cluster_for(gateway.tenant, placement.cluster if placement else None)
        if placement is not None and placement.cluster_id != cluster.pk:
            # The plan no longer allows the old cluster: take the gateway off it first.
            remove(gateway.tenant.slug, gateway.name, placement.cluster)
        KubernetesPlacement.objects.update_or_create(gateway=gateway, defaults={"cluster": cluster})
        api = api or api_for(cluster)
    except desired.NoCluster as error:
        return status.failed(str(error), reason="NoCluster")
    except UnusableCluster as error:
        return status.failed(str(error), reason="InvalidCluster")
    try:
        observed = apply.observe(api, gateway.tenant.slug, gateway.name)
        gateway_input = desired.gateway_input(gateway, cluster)
        result = apply.reconcile(
            api,
            desired.tenant_input(gateway.tenant),
            gateway_input,
            desired.cluster_settings(cluster),
            observed=observed,
            force=force,
        )
        revoke_gone_pods(api, gateway)
        if result.applied or result.pruned:
            return status.read_status(api, gateway_input)
        name = names.workload(gateway.name)  # nothing changed: what was listed is current
        return status.read_status(
            api, gateway_input, observed.find("Deployment", name), observed.find("Service", name)
        )
    except KubernetesError as error:
        if error.transient:
            raise
        return status.failed(str(error))


def remove(tenant: str, gateway: str, cluster: KubernetesCluster, api: KubeApi | None = None):
    """Deletes what Gantry made for the gateway (takes names: the row may be gone), revokes
    its pods' xDS tokens (a deleted gateway's went with its row) and ends their usage runs."""
    PodCredential.objects.filter(gateway__tenant__slug=tenant, gateway__name=gateway).delete()
    metering.close_gateway_pods(tenant, gateway)
    return apply.delete_gateway(api or api_for(cluster), tenant, gateway)


def leave(gateway: Gateway, api: KubeApi | None = None) -> list[str]:
    """The gateway left the Kubernetes runtime: remove its objects from where it was placed."""
    placement = (
        KubernetesPlacement.objects.filter(gateway=gateway).select_related("cluster").first()
    )
    if placement is None:
        return []
    removed = remove(gateway.tenant.slug, gateway.name, placement.cluster, api)
    placement.delete()
    return removed
