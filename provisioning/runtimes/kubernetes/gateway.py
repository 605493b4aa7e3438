"""The objects of one gateway: identity, Service, autoscaling, disruption budget and network
policy. The Deployment is in ``workload.py``."""

import ipaddress

from gateways.egress import ALWAYS_DENIED_NETWORKS, EgressPolicy
from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.inputs import ClusterSettings, GatewayInput

DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def meta(gateway: GatewayInput, name: str | None = None) -> dict:
    return {
        "name": name or names.workload(gateway.name),
        "namespace": names.namespace(gateway.tenant),
        "labels": names.gateway_labels(gateway.tenant, gateway.name),
        "annotations": {names.OWNER_ANNOTATION: f"gateway/{gateway.key}"},
    }


def service_account(gateway: GatewayInput) -> dict:
    """The identity the pods prove to the xDS server's enrollment (by a projected token; no
    token is mounted automatically)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(gateway),
        "automountServiceAccountToken": False,
    }


def service_ports(gateway: GatewayInput) -> list[dict]:
    """One port per listener port (listeners sharing a port by hostname share it)."""
    first = {}
    for listener in gateway.listeners:
        first.setdefault(listener.port, listener)
    return [
        {
            "name": names.port_name(first[port].name, port),
            "port": port,
            "targetPort": port,
            "protocol": "TCP",
        }
        for port in gateway.ports
    ]


def service(gateway: GatewayInput, cluster: ClusterSettings) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(gateway),
        "spec": {
            "type": cluster.exposure,
            # Local keeps the client's address, which IP access rules and logs need.
            "externalTrafficPolicy": "Local",
            "selector": names.selector_labels(gateway.tenant, gateway.name),
            "ports": service_ports(gateway),
        },
    }


def autoscaler(gateway: GatewayInput) -> dict:
    scaling = gateway.autoscaling
    target = {"type": "Utilization", "averageUtilization": scaling.target_cpu_percent}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(gateway),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": names.workload(gateway.name),
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def disruption_budget(gateway: GatewayInput) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(gateway),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": names.selector_labels(gateway.tenant, gateway.name)},
        },
    }


def _peer(host: str) -> list[dict]:
    """An IP as a /32 (/128) block; a DNS name can be anywhere, so the port alone limits it."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    return [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}]


def _egress_rule(host: str, port: int) -> dict:
    rule = {"ports": [{"protocol": "TCP", "port": port}]}
    peers = _peer(host)
    if peers:
        rule["to"] = peers
    return rule


def _ranges(cluster: ClusterSettings) -> tuple[list, list]:
    """(denied, allowed) networks: the safe defaults always among the denied."""
    denied = [network for network, _ in ALWAYS_DENIED_NETWORKS]
    denied += [ipaddress.ip_network(c, strict=False) for c in cluster.denied_cidrs]
    allowed = [ipaddress.ip_network(c, strict=False) for c in cluster.allowed_cidrs]
    return list(dict.fromkeys(denied)), allowed


def _refused(host: str, cluster: ClusterSettings) -> bool:
    """An IP backend the egress policy refuses (the API and translation refuse it too)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    policy = EgressPolicy.from_values(
        denied_cidrs=cluster.denied_cidrs, allowed_cidrs=cluster.allowed_cidrs, allow_loopback=True
    )
    return policy.check(host) is not None


def _block(cidr, excepted: list) -> dict:
    inside = sorted(
        (n for n in excepted if n.version == cidr.version and n != cidr and n.subnet_of(cidr)),
        key=lambda n: (n.network_address, n.prefixlen),
    )  # fmt: skip
    block = {"cidr": str(cidr)}
    if inside:
        block["except"] = [str(n) for n in inside]
    return {"ipBlock": block}


def _anywhere_but_denied(cluster: ClusterSettings) -> list[dict]:
    """Peers for a backend known by DNS name: any address outside the denied ranges (the
    platform's among them), plus the operator's exceptions (outside the safe defaults)."""
    denied, allowed = _ranges(cluster)
    peers = [_block(ipaddress.ip_network(cidr), denied) for cidr in ("0.0.0.0/0", "::/0")]
    for network in allowed:
        covered = any(
            network.version == d.version and network.subnet_of(d)
            for d, _ in ALWAYS_DENIED_NETWORKS
        )  # fmt: skip
        if not covered:
            peers.append(_block(network, [d for d, _ in ALWAYS_DENIED_NETWORKS]))
    return peers


def _backend_rule(host: str, port: int, cluster: ClusterSettings) -> dict:
    rule = _egress_rule(host, port)
    if "to" not in rule:
        rule["to"] = _anywhere_but_denied(cluster)
    return rule


def network_policy(gateway: GatewayInput, cluster: ClusterSettings) -> dict:
    """Admits the listener ports from anywhere; lets Envoy reach DNS, the xDS server (and the
    rate limit service, with global rate limits) and the gateway's backends, and nothing else
    (the tenant's default-deny covers the rest).

    A backend by IP gets its /32 (/128), unless the egress policy refuses it; a backend by DNS
    name, which may resolve anywhere, gets every address outside the denied ranges (the safe
    defaults, the platform's CIDRs and the operator's denials) on its port. Backends naming a
    Kubernetes Service of this cluster reach the pods of its (granted) namespace on the target
    ports its EndpointSlices name."""
    ingress = [{"ports": [{"protocol": "TCP", "port": port} for port in gateway.ports]}]
    egress = [{"ports": DNS_PORTS}, _egress_rule(cluster.xds_address, cluster.xds_port)]
    if gateway.rate_limit_service:  # the platform's, like the xDS server
        egress.append(_egress_rule(*gateway.rate_limit_service))
    seen = set()
    for backend in gateway.backends:
        if _refused(backend.host, cluster):
            continue
        rule = _backend_rule(backend.host, backend.port, cluster)
        key = repr(rule)
        if key not in seen:
            seen.add(key)
            egress.append(rule)
    for peers in gateway.discovered:  # pods of granted namespaces (docs/discovery.md)
        egress.append({
            "to": [{"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": peers.namespace}}}],
            "ports": [{"protocol": "TCP", "port": port} for port in peers.ports],
        })  # fmt: skip
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(gateway),
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(gateway.tenant, gateway.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
