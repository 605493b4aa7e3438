"""The objects of one tenant: its namespace and the limits every gateway in it lives within."""

import math

from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.inputs import TenantInput

POD_SECURITY = "restricted"


def _meta(tenant: str, name: str, namespaced: bool = True) -> dict:
    meta = {"name": name, "namespace": names.namespace(tenant)} if namespaced else {"name": name}
    meta["labels"] = names.tenant_labels(tenant)
    meta["annotations"] = {names.OWNER_ANNOTATION: f"tenant/{tenant}"}
    return meta


def namespace(tenant: TenantInput) -> dict:
    meta = _meta(tenant.slug, names.namespace(tenant.slug), namespaced=False)
    for mode in ("enforce", "audit", "warn"):
        meta["labels"][f"pod-security.kubernetes.io/{mode}"] = POD_SECURITY
        meta["labels"][f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def max_pods(quota) -> int:
    """Every replica the plan allows, plus the surge of a rolling update (25 %, rounded up)."""
    per_gateway = quota.max_replicas_per_gateway + math.ceil(quota.max_replicas_per_gateway / 4)
    return quota.max_gateways * per_gateway


def resource_quota(tenant: TenantInput) -> dict:
    quota = tenant.quota
    pods = max_pods(quota)
    hard = {
        "pods": str(pods),
        "requests.cpu": str(pods * quota.max_vcpu),
        "limits.cpu": str(pods * quota.max_vcpu),
        "requests.memory": f"{pods * quota.max_memory_gib}Gi",
        "limits.memory": f"{pods * quota.max_memory_gib}Gi",
        "services": str(quota.max_gateways),
        "services.loadbalancers": str(quota.max_gateways),
        "services.nodeports": str(quota.max_gateways * 64),  # a port per listener, ≤ 64
        "secrets": str(quota.max_gateways),
        "persistentvolumeclaims": "0",
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(tenant.slug, "gantry-quota"),
        "spec": {"hard": hard},
    }


def limit_range(tenant: TenantInput) -> dict:
    quota = tenant.quota
    smallest = {"cpu": str(quota.min_vcpu), "memory": f"{quota.min_memory_gib}Gi"}
    largest = {"cpu": str(quota.max_vcpu), "memory": f"{quota.max_memory_gib}Gi"}
    limit = {
        "type": "Container",
        "default": smallest,
        "defaultRequest": smallest,
        "max": largest,
    }
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(tenant.slug, "gantry-limits"),
        "spec": {"limits": [limit]},
    }


def default_deny(tenant: TenantInput) -> dict:
    """Nothing in or out of the namespace unless a gateway's own policy admits it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(tenant.slug, "gantry-default-deny"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def render_tenant(tenant: TenantInput) -> list[dict]:
    return [namespace(tenant), resource_quota(tenant), limit_range(tenant), default_deny(tenant)]
