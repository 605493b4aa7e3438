"""The bootstrap of one gateway replica: who it is, where its xDS server is, how it proves it.

Everything else (listeners, routes, clusters) comes over ADS, so the bootstrap only changes when
the replica's identity, token or xDS server address does.
"""

import ipaddress

from provisioning.translate.types import HTTP_PROTOCOL_OPTIONS

ADMIN_SOCKET_MODE = 0o600  # the admin socket: the platform's user only

XDS_CLUSTER = "xds"
API_TYPES = ("DELTA_GRPC", "GRPC")  # incremental (preferred) or state of the world

# How fast a replica finds its xDS server again after the server restarts: retry the stream
# from 100 ms, backing off to at most 1 s (Envoy's default is 500 ms up to 30 s).
RETRY_BASE = "0.1s"
RETRY_MAX = "1s"
CONNECT_TIMEOUT = "1s"
# HTTP/2 pings on the ADS connection: a dead server (or a silently dropped connection) is
# noticed within interval + timeout, not when the kernel gives up on TCP.
KEEPALIVE = {"interval": "15s", "timeout": "5s"}


def node_id(gateway_key: str, replica: str | int) -> str:
    return f"{gateway_key}/{replica}"


def _xds_cluster(address: str, port: int, socket_path: str | None) -> dict:
    if socket_path:  # a Unix socket (the warm validator's private server)
        discovery = "STATIC"
        endpoint = {"address": {"pipe": {"path": socket_path}}}
    else:
        try:
            ipaddress.ip_address(address)
            discovery = "STATIC"
        except ValueError:  # a host name (a Kubernetes Service): resolve it, follow changes
            discovery = "STRICT_DNS"
        endpoint = {"address": {"socket_address": {"address": address, "port_value": port}}}
    return {
        "name": XDS_CLUSTER,
        "type": discovery,
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
        # gRPC needs HTTP/2 to the server.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {
                    "http2_protocol_options": {"connection_keepalive": KEEPALIVE}
                },
            }
        },
    }


def envoy_bootstrap(
    *,
    gateway_key: str,
    replica: str | int,
    token: str,
    xds_address: str = "",
    xds_port: int = 0,
    xds_socket: str | None = None,
    admin_socket: str | None = None,
    admin_port: int | None = None,
    api_type: str = "DELTA_GRPC",
) -> dict:
    """The bootstrap (protobuf JSON, as a dict) for replica ``replica`` of a gateway.

    The xDS server is ``xds_address``:``xds_port``, or the Unix socket ``xds_socket``. The admin
    interface goes on the Unix socket ``admin_socket`` (mode 0600), or on loopback TCP
    ``admin_port`` (only inside a pod, or for tests' own Envoys), or nowhere when neither is
    given."""
    if api_type not in API_TYPES:
        raise ValueError(f"api_type must be one of {API_TYPES}, not {api_type!r}")
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    grpc_service = {
        "envoy_grpc": {
            "cluster_name": XDS_CLUSTER,
            "retry_policy": {
                "retry_back_off": {"base_interval": RETRY_BASE, "max_interval": RETRY_MAX}
            },
        },
        "initial_metadata": [{"key": "authorization", "value": f"Bearer {token}"}],
    }
    bootstrap = {
        "node": {"id": node_id(gateway_key, replica), "cluster": gateway_key},
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [grpc_service],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {"clusters": [_xds_cluster(xds_address, xds_port, xds_socket)]},
    }
    if admin_socket:
        pipe = {"path": admin_socket, "mode": ADMIN_SOCKET_MODE}
        bootstrap["admin"] = {"address": {"pipe": pipe}}
        # Metering reads the request-time histogram there: flush it at each read, not on a timer.
        bootstrap["stats_flush_on_admin"] = True
    elif admin_port is not None:
        address = {"address": "127.0.0.1", "port_value": admin_port}
        bootstrap["admin"] = {"address": {"socket_address": address}}
    return bootstrap


# -- usage counters pushed by Kubernetes pods ---------------------------------------------------

# The listener stats metering keeps (``provisioning.metering``): everything else is dropped in
# Envoy before it is sent.
METERED_STATS = (
    r"^http\..+\.port\.[0-9]+\."
    r"(downstream_rq_[1-5]xx|downstream_cx_[rt]x_bytes_total|downstream_rq_time)$"
)
_TYPES = "type.googleapis.com/envoy.extensions"
STAT_SINK = "envoy.stat_sinks.open_telemetry"


def metrics_sink(token: str) -> dict:
    """Envoy's OpenTelemetry stats sink, over the xDS cluster with the replica's own xDS token:
    cumulative counters and histograms, full stat names, only the metered listener stats."""
    drop_others = {
        "predicate": {
            "not_matcher": {
                "single_predicate": {
                    "input": {
                        "name": "stat_full_name",
                        "typed_config": {
                            "@type": f"{_TYPES}.matching.common_inputs.stats.v3"
                            ".StatFullNameMatchInput"
                        },
                    },
                    "value_match": {"safe_regex": {"google_re2": {}, "regex": METERED_STATS}},
                }
            }
        },
        "on_match": {
            "action": {
                "name": "drop",
                "typed_config": {
                    "@type": f"{_TYPES}.stat_sinks.open_telemetry.v3.SinkConfig.DropAction"
                },
            }
        },
    }
    return {
        "name": STAT_SINK,
        "typed_config": {
            "@type": f"{_TYPES}.stat_sinks.open_telemetry.v3.SinkConfig",
            "grpc_service": {
                "envoy_grpc": {"cluster_name": XDS_CLUSTER},
                "initial_metadata": [{"key": "authorization", "value": f"Bearer {token}"}],
            },
            "report_counters_as_deltas": False,
            "report_histograms_as_deltas": False,
            "emit_tags_as_attributes": False,
            "use_tag_extracted_name": False,
            "custom_metric_conversions": {"matcher_list": {"matchers": [drop_others]}},
        },
    }
