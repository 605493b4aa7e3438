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
_BY_PORT = re.compile(r"^port-\d+$")
READY_PORT_NAME = "ready"  # the probe port of the Envoy container


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
    """The listener's name when it is a valid port name (an IANA service name: ≤ 15
    characters, a letter, no '--'), else ``port-<n>``. Names of the first kind never look like
    the second nor like the probe port's, so the names stay unique."""
    usable = len(listener_name) <= 15 and _IANA_SVC_NAME.match(listener_name)
    if usable and not _BY_PORT.match(listener_name) and listener_name != READY_PORT_NAME:
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
