"""A gateway's status from the cluster: available replicas and where its listeners answer."""

from dataclasses import dataclass, field

from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.client import KubeApi
from provisioning.runtimes.kubernetes.inputs import GatewayInput

DEFAULT_PORTS = {"HTTP": 80, "HTTPS": 443}


@dataclass
class RuntimeStatus:
    """What the driver reports: ``phase`` (Pending, Ready, Degraded, Failed), Gateway-API style
    ``conditions`` and the ``url`` of each listener (by name) once it has an address."""

    phase: str
    desired_replicas: int = 0
    available_replicas: int = 0
    urls: dict = field(default_factory=dict)
    conditions: list = field(default_factory=list)
    message: str = ""


def _condition(type_: str, ok: bool, reason: str, message: str) -> dict:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason,
            "message": message}  # fmt: skip


def _node_address(api: KubeApi) -> str | None:
    nodes = api.list("Node", None, "")
    for wanted in ("ExternalIP", "InternalIP"):
        for node in nodes:
            for address in (node.get("status") or {}).get("addresses", []):
                if address.get("type") == wanted:
                    return address["address"]
    return None


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def listener_urls(gateway: GatewayInput, service: dict, node_address: str | None) -> dict:
    spec, status = service.get("spec") or {}, service.get("status") or {}
    by_port = {p["port"]: p for p in spec.get("ports", [])}
    if spec.get("type") == "NodePort":
        host = node_address
    else:
        ingress = (status.get("loadBalancer") or {}).get("ingress") or [{}]
        host = ingress[0].get("hostname") or ingress[0].get("ip")
    if not host:
        return {}
    urls = {}
    for listener in gateway.listeners:
        port = by_port.get(listener.port, {})
        if spec.get("type") == "NodePort":
            port = port.get("nodePort")
        else:
            port = listener.port
        if not port:
            continue
        scheme = listener.protocol.lower()
        suffix = "" if port == DEFAULT_PORTS.get(listener.protocol) else f":{port}"
        urls[listener.name] = f"{scheme}://{_host(host)}{suffix}"
    return urls


def read_status(
    api: KubeApi, gateway: GatewayInput, deployment: dict | None = None, service: dict | None = None
) -> RuntimeStatus:
    """From the cluster, or from ``deployment`` and ``service`` when the caller has just read
    them (a reconcile that changed nothing)."""
    ns, name = names.namespace(gateway.tenant), names.workload(gateway.name)
    deployment = deployment or api.get("Deployment", ns, name)
    if deployment is None:
        return RuntimeStatus(
            "Pending", conditions=[_condition("Ready", False, "NotFound", "no Deployment yet")]
        )
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    desired = spec.get("replicas", gateway.replicas)
    available = status.get("availableReplicas") or 0
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    service = service or api.get("Service", ns, name) or {}
    node = _node_address(api) if (service.get("spec") or {}).get("type") == "NodePort" else None
    urls = listener_urls(gateway, service, node)
    if available >= desired and current and urls:
        phase, reason = "Ready", "Available"
        message = f"{available}/{desired} replicas available"
    elif available > 0:
        phase, reason = "Degraded", "Progressing"
        message = f"{available}/{desired} replicas available" + ("" if urls else ", no address yet")
    else:
        phase, reason = "Pending", "Progressing"
        message = f"0/{desired} replicas available" + ("" if urls else ", no address yet")
    return RuntimeStatus(
        phase, desired, available, urls if available else {},  # a url only where it answers
        [_condition("Ready", phase == "Ready", reason, message)], message,
    )  # fmt: skip


def failed(message: str, reason: str = "KubernetesError") -> RuntimeStatus:
    return RuntimeStatus("Failed", conditions=[_condition("Ready", False, reason, message)],
                         message=message)  # fmt: skip
