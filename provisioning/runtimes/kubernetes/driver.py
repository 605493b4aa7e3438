"""The Kubernetes runtime driver: what a reconcile calls for a gateway whose ``runtime`` is
``kubernetes``.

``converge(gateway)`` renders and applies the tenant's and the gateway's objects on the cluster
its plan may use and returns a ``RuntimeStatus`` (phase, conditions, listener urls). A refusal
by the API server (403, 422, …) becomes a ``Failed`` status carrying its message; transient
errors that outlast the retries raise ``KubernetesError`` for the caller (a Celery retry).
``remove(tenant, gateway, cluster)`` deletes a gateway's objects, and the namespace with the
tenant's last gateway.

The gateway's xDS token is kept across reconciles: the one in the cluster's bootstrap Secret is
reused while it still authenticates; otherwise (first apply, rotated, lost) a new one is issued,
and the pods roll to it.
"""

import base64

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gateways.models import Gateway
from provisioning.models import KubernetesCluster, KubernetesPlacement
from provisioning.runtimes.kubernetes import apply, desired, envoy_pod, names, status
from provisioning.runtimes.kubernetes.client import KubeApi, KubernetesError
from provisioning.xds.credentials import authenticate, gateway_key, issue_xds_token


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


def _token_in(secret: dict | None) -> str | None:
    try:
        text = base64.b64decode(secret["data"][envoy_pod.BOOTSTRAP_KEY]).decode()
        services = yaml.safe_load(text)["dynamic_resources"]["ads_config"]["grpc_services"]
        value = next(
            m["value"] for m in services[0]["initial_metadata"] if m["key"] == "authorization"
        )
    except (TypeError, KeyError, IndexError, StopIteration, ValueError, yaml.YAMLError):
        return None
    return value.removeprefix("Bearer ")


def _token(gateway: Gateway, observed: apply.Observed) -> str:
    token = _token_in(observed.find("Secret", names.workload(gateway.name)))
    if token and authenticate(token) == gateway_key(gateway):
        return token
    return issue_xds_token(gateway)


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
        gateway_input = desired.gateway_input(gateway, _token(gateway, observed))
        result = apply.reconcile(
            api,
            desired.tenant_input(gateway.tenant),
            gateway_input,
            desired.cluster_settings(cluster),
            observed=observed,
            force=force,
        )
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
    """Deletes what Gantry made for the gateway (takes names: the row may be gone)."""
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
