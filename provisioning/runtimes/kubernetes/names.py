"""Deterministic names, labels and annotations of everything Gantry puts on a cluster."""

import hashlib
import re

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "gantry"
TENANT_LABEL = "gantry.io/tenant"
GATEWAY_LABEL = "gantry.io/gateway"
OWNER_ANNOTATION = "gantry.io/owner"
HASH_ANNOTATION = "gantry.io/applied-hash"
NAMESPACE_PREFIX = "gantry-"
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]$")


def fit(name: str, limit: int = 63) -> str:
    """``name`` if it fits in ``limit`` characters, else a prefix plus a short hash of it."""
    if len(name) <= limit:
        return name
    suffix = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{suffix}"


def namespace(tenant: str) -> str:
    return fit(NAMESPACE_PREFIX + tenant)


def workload(gateway: str) -> str:
    """The name of a gateway's Deployment, Service and the rest (a DNS-1035 label)."""
    return fit(f"envoy-{gateway}")


def port_name(listener_name: str, port: int) -> str:
    """Kubernetes port names are IANA service names (≤ 15 characters, a letter, no '--')."""
    if len(listener_name) <= 15 and _IANA_SVC_NAME.match(listener_name):
        return listener_name
    return f"port-{port}"


def tenant_labels(tenant: str) -> dict:
    return {MANAGED_BY: MANAGER, TENANT_LABEL: tenant}


def gateway_labels(tenant: str, gateway: str) -> dict:
    return {
        "app.kubernetes.io/name": "envoy",
        "app.kubernetes.io/instance": gateway,
        "app.kubernetes.io/component": "gateway",
        MANAGED_BY: MANAGER,
        TENANT_LABEL: tenant,
        GATEWAY_LABEL: gateway,
    }


def selector_labels(tenant: str, gateway: str) -> dict:
    """The pods of one gateway (immutable in a Deployment: never add to these)."""
    return {TENANT_LABEL: tenant, GATEWAY_LABEL: gateway}


def tenant_selector(tenant: str) -> str:
    """Label selector of the tenant-wide objects (not those of a gateway)."""
    return f"{MANAGED_BY}={MANAGER},{TENANT_LABEL}={tenant},!{GATEWAY_LABEL}"


def gateway_selector(tenant: str, gateway: str) -> str:
    return f"{MANAGED_BY}={MANAGER},{TENANT_LABEL}={tenant},{GATEWAY_LABEL}={gateway}"
