"""The rendering inputs of a tenant and a gateway, read from the database."""

from urllib.parse import urlsplit

from django.conf import settings

from gateways.egress import current_policy
from gateways.models import Backend, Gateway
from gateways.sizes import SIZES
from provisioning.desired import _backend_names
from provisioning.ir.ext_auth import named_backends
from provisioning.models import KubernetesCluster
from provisioning.runtimes.kubernetes.inputs import (
    Autoscaling,
    BackendAddress,
    ClusterSettings,
    DiscoveredPeers,
    GatewayInput,
    ListenerPort,
    TenantInput,
    TenantQuota,
)
from tenants.models import Tenant


class NoCluster(Exception):
    """No registered cluster may run this tenant's gateways."""


def cluster_for(tenant: Tenant, placed: KubernetesCluster | None = None) -> KubernetesCluster:
    """The cluster a tenant's gateway runs on: where it was placed while the plan still allows
    that cluster, else the first (by name) the plan may use."""
    allowed = KubernetesCluster.objects.filter(plans=tenant.plan_id)
    if placed is not None and allowed.filter(pk=placed.pk).exists():
        return placed
    cluster = allowed.order_by("name").first()
    if cluster is None:
        raise NoCluster(f"no Kubernetes cluster is registered for plan {tenant.plan.name}")
    return cluster


def cluster_settings(cluster: KubernetesCluster) -> ClusterSettings:
    egress = current_policy()
    return ClusterSettings(
        exposure=cluster.exposure,
        envoy_image=cluster.envoy_image,
        xds_address=cluster.xds_address,
        xds_port=cluster.xds_port,
        denied_cidrs=tuple(str(network) for network in egress.denied_networks()),
        allowed_cidrs=tuple(str(network) for network in egress.allowed_cidrs),
        platform_image=settings.GANTRY_PLATFORM_IMAGE,
    )


def tenant_input(tenant: Tenant) -> TenantInput:
    plan = tenant.plan
    sizes = [SIZES[name] for name in plan.allowed_sizes if name in SIZES] or [SIZES["small"]]
    largest = max(sizes, key=lambda size: size.vcpu)
    smallest = min(sizes, key=lambda size: size.vcpu)
    return TenantInput(
        slug=tenant.slug,
        quota=TenantQuota(
            max_gateways=plan.max_gateways,
            max_replicas_per_gateway=plan.max_replicas_per_gateway,
            max_vcpu=largest.vcpu,
            max_memory_gib=largest.memory_gib,
            min_vcpu=smallest.vcpu,
            min_memory_gib=smallest.memory_gib,
        ),
    )


def _backends(gateway: Gateway) -> tuple[BackendAddress, ...]:
    """Where the gateway's Envoy connects: its routes' backends, its policies' extAuth
    services and remote JWKS hosts; never an address the egress policy refuses."""
    routes = [{"spec": route.spec} for route in gateway.routes.all()]
    policies = [policy.spec for policy in gateway.policies.all()]
    names = _backend_names(routes) | {n for spec in policies for _, n in named_backends(spec)}
    egress = current_policy()
    found = set()
    for backend in Backend.objects.filter(tenant=gateway.tenant, name__in=names):
        for endpoint in backend.spec.get("endpoints", []):
            target = endpoint.get("ip") or endpoint.get("fqdn") or {}
            host = target.get("address") or target.get("hostname")
            if host and target.get("port"):
                found.add(BackendAddress(host=host, port=target["port"]))
    for spec in policies:
        for provider in (spec.get("jwt") or {}).get("providers", []):
            uri = (provider.get("remoteJWKS") or {}).get("uri")
            if uri:
                parsed = urlsplit(uri)
                port = parsed.port or (443 if parsed.scheme == "https" else 80)
                found.add(BackendAddress(host=parsed.hostname or "", port=port))
    allowed = {b for b in found if b.host and egress.check(b.host, b.port) is None}
    return tuple(sorted(allowed, key=lambda b: (b.host, b.port)))


def _autoscaling(spec: dict) -> Autoscaling | None:
    """``spec.autoscaling`` (``minReplicas``, ``maxReplicas``, ``targetCPUUtilizationPercentage``)
    when the gateway spec has one."""
    raw = spec.get("autoscaling")
    if not raw:
        return None
    return Autoscaling(
        min_replicas=raw["minReplicas"],
        max_replicas=raw["maxReplicas"],
        target_cpu_percent=raw.get("targetCPUUtilizationPercentage", 70),
    )


def _discovered(gateway: Gateway, cluster) -> tuple[DiscoveredPeers, ...]:
    """The granted namespaces of ``cluster`` (the gateway's) whose Services its backends name,
    with the pods' target ports the discovery watcher has seen there."""
    from provisioning.discovery.grants import is_granted
    from provisioning.models import DiscoveredEndpoints

    if cluster is None:
        return ()
    routes = [{"spec": route.spec} for route in gateway.routes.all()]
    policies = [policy.spec for policy in gateway.policies.all()]
    names = _backend_names(routes) | {n for spec in policies for _, n in named_backends(spec)}
    ports: dict[str, set[int]] = {}
    backends = Backend.objects.filter(tenant=gateway.tenant, name__in=names)
    for backend in backends.filter(spec__has_key="kubernetesService"):
        ref = backend.spec["kubernetesService"]
        if ref.get("cluster") != cluster.name:
            continue
        if not is_granted(gateway.tenant_id, cluster.name, ref["namespace"]):
            continue
        rows = DiscoveredEndpoints.objects.filter(
            cluster=cluster, namespace=ref["namespace"], service=ref["name"], port=ref["port"]
        ).values_list("endpoints", flat=True)
        found = {e["port"] for endpoints in rows for e in endpoints}
        if found:
            ports.setdefault(ref["namespace"], set()).update(found)
    return tuple(
        DiscoveredPeers(namespace, tuple(sorted(found)))
        for namespace, found in sorted(ports.items())
    )


def gateway_input(gateway: Gateway, cluster=None) -> GatewayInput:
    """``cluster``: where the gateway runs (its discovered pods' namespaces are admitted)."""
    spec = gateway.spec
    size = SIZES[spec.get("size", "small")]
    return GatewayInput(
        tenant=gateway.tenant.slug,
        name=gateway.name,
        vcpu=size.vcpu,
        memory_gib=size.memory_gib,
        replicas=spec.get("replicas", 1),
        listeners=tuple(
            ListenerPort(name=item["name"], port=item["port"], protocol=item["protocol"])
            for item in spec.get("listeners", [])
        ),
        backends=_backends(gateway),
        autoscaling=_autoscaling(spec),
        discovered=_discovered(gateway, cluster),
        rate_limit_service=_rate_limit_service(gateway),
    )


def _rate_limit_service(gateway: Gateway) -> tuple[str, int] | None:
    """Where the gateway's Envoys ask for global rate limits, if a policy has them."""
    for spec in gateway.policies.values_list("spec", flat=True):
        if (spec.get("rateLimit") or {}).get("type") == "Global":
            return settings.GANTRY_RATELIMIT_KUBERNETES_HOST, settings.GANTRY_RATELIMIT_PORT
    return None
