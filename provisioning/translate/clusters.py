"""IR clusters (a tenant's backends) → Envoy Cluster."""

from provisioning.ir.types import Cluster
from provisioning.translate.types import CLUSTER, HTTP_PROTOCOL_OPTIONS, UPSTREAM_TLS


def envoy_cluster(cluster: Cluster) -> dict:
    envoy = {
        "@type": CLUSTER,
        "name": cluster.name,
        "type": "STRICT_DNS" if cluster.kind == "dns" else "STATIC",
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
    if cluster.protocol in ("h2c", "gRPC"):
        envoy["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    if cluster.tls:
        context: dict = {"@type": UPSTREAM_TLS}
        if cluster.tls_sni:
            context["sni"] = cluster.tls_sni
        if cluster.tls_ca:
            context["common_tls_context"] = {
                "validation_context": {"trusted_ca": {"inline_string": cluster.tls_ca}}
            }
        envoy["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": context}
    return envoy
