"""IR clusters (a tenant's backends) → Envoy Cluster.

A backend naming a Kubernetes Service becomes an EDS cluster: its endpoints come over ADS as a
ClusterLoadAssignment named after the backend's cluster, which the xDS server builds from the
discovery watcher's rows (``provisioning/discovery``), so endpoint changes never recompile. The
Service it follows travels in the cluster's metadata (``gantry.discovery``), which is how the
xDS server knows which rows to serve."""

from provisioning.ir.types import Cluster, DnsSettings
from provisioning.translate import cluster_settings
from provisioning.translate.types import (
    CARES_RESOLVER,
    CLUSTER,
    HTTP_PROTOCOL_OPTIONS,
    UPSTREAM_TLS,
    duration,
)

DISCOVERY_METADATA = "gantry.discovery"

# Debian's and Ubuntu's bundle of public CAs; the official Envoy image has it at the same path.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def envoy_cluster(cluster: Cluster) -> dict:
    envoy = {
        "@type": CLUSTER,
        "name": cluster.name,
        "type": _type(cluster),
        "connect_timeout": "5s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": cluster.name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": e.address, "port_value": e.port}
                                }
                            }
                        }
                        for e in cluster.endpoints
                    ]
                }
            ],
        },  # fmt: skip
    }
    if cluster.kind == "dns":
        envoy["dns_lookup_family"] = "V4_PREFERRED"
        if cluster.dns is not None:
            _dns(cluster.dns, envoy)
    if cluster.kind == "eds" and cluster.service is not None:
        service = cluster.service
        envoy["type"] = "EDS"
        del envoy["load_assignment"]
        envoy["eds_cluster_config"] = {
            "eds_config": {"ads": {}, "resource_api_version": "V3"},
            "service_name": service.assignment,
        }
        envoy["metadata"] = {"filter_metadata": {DISCOVERY_METADATA: {
            "cluster": service.cluster, "namespace": service.namespace,
            "service": service.name, "port": service.port,
        }}}  # fmt: skip
    if cluster.protocol in ("h2c", "gRPC"):
        envoy["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    if cluster.settings is not None:
        cluster_settings.apply(cluster.settings, envoy)
    if cluster.tls:
        envoy["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": upstream_tls(cluster),
        }
    return envoy


def _type(cluster: Cluster) -> str:
    if cluster.kind != "dns":
        return "STATIC"
    return "LOGICAL_DNS" if cluster.dns is not None and cluster.dns.logical else "STRICT_DNS"


def _dns(dns: DnsSettings, envoy: dict) -> None:
    if dns.refresh_ms is not None:
        envoy["dns_refresh_rate"] = duration(dns.refresh_ms)
    if dns.respect_ttl:
        envoy["respect_dns_ttl"] = True
    if dns.resolvers:
        envoy["typed_dns_resolver_config"] = {
            "name": "envoy.network.dns_resolver.cares",
            "typed_config": {
                "@type": CARES_RESOLVER,
                "resolvers": [
                    {"socket_address": {"address": address, "port_value": port}}
                    for address, port in dns.resolvers
                ],
            },
        }


def upstream_tls(cluster: Cluster) -> dict:
    """Upstream TLS that verifies the backend: its chain against the tenant's CA certificates
    (else the system bundle), and its name against the SNI (else the backend's hostname)."""
    context: dict = {"@type": UPSTREAM_TLS}
    if cluster.tls_sni:
        context["sni"] = cluster.tls_sni
    trusted = (
        {"inline_string": cluster.tls_ca} if cluster.tls_ca else {"filename": SYSTEM_CA_BUNDLE}
    )
    validation: dict = {"trusted_ca": trusted}
    name = cluster.tls_sni or cluster.verify_name
    if not name and cluster.kind == "dns":
        name = cluster.endpoints[0].address
    if name:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "DNS", "matcher": {"exact": name}}
        ]
    context["common_tls_context"] = {"validation_context": validation}
    return context
