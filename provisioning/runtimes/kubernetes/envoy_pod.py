"""What the Envoy container of a gateway pod runs: its bootstrap, command line, probes and drain.

The admin interface stays on 127.0.0.1 (it can stop the server or dump its config). Kubelet
probes reach a separate static listener on the pod IP that answers only ``GET /ready``, proxied
to the admin's ``/ready`` (200 once Envoy is initialised and live); every other path is a 404.
"""

from provisioning.translate.types import HCM, ROUTER
from provisioning.xds.bootstrap import envoy_bootstrap, metrics_sink

BOOTSTRAP_DIR = "/etc/envoy"
BOOTSTRAP_PATH = f"{BOOTSTRAP_DIR}/bootstrap.yaml"
DRAIN_SECONDS = 30
# Long enough for the pre-stop hook (drain, then wait) plus Envoy's own exit.
TERMINATION_GRACE_SECONDS = DRAIN_SECONDS + 15
READY_CLUSTER = "gantry-admin"
READY_LISTENER = "gantry-ready"


def internal_ports(listener_ports: tuple[int, ...]) -> tuple[int, int]:
    """(admin, ready) ports: 19000 and 19001 unless a listener already uses them."""
    free = (port for port in range(19000, 65536) if port not in set(listener_ports))
    return next(free), next(free)


def _ready_listener(ready_port: int) -> dict:
    routes = [
        {"match": {"path": "/ready"}, "route": {"cluster": READY_CLUSTER}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    manager = {
        "@type": HCM,
        "stat_prefix": "gantry_ready",
        "route_config": {
            "name": READY_LISTENER,
            "virtual_hosts": [{"name": READY_LISTENER, "domains": ["*"], "routes": routes}],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    return {
        "name": READY_LISTENER,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": ready_port}},  # noqa: S104
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def _admin_cluster(admin_port: int) -> dict:
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return {
        "name": READY_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": READY_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
    }


def pod_bootstrap(
    *,
    gateway_key: str,
    pod_name: str,
    token: str,
    xds_address: str,
    xds_port: int,
    ports: tuple[int, ...],
    metering_seconds: float = 10,
) -> dict:
    """The bootstrap of one pod, with its own node id and xDS token: the xDS server's
    enrollment renders it for a pod that proved who it is (``provisioning.xds.enrollment``).
    The pod pushes its usage counters to the xDS server every ``metering_seconds``, on the same
    connection and with the same token as its xDS stream (``provisioning.xds.metrics``)."""
    admin_port, ready_port = internal_ports(ports)
    bootstrap = envoy_bootstrap(
        gateway_key=gateway_key,
        replica=pod_name,
        token=token,
        xds_address=xds_address,
        xds_port=xds_port,
        admin_port=admin_port,
    )
    static = bootstrap["static_resources"]
    static["clusters"] = [*static["clusters"], _admin_cluster(admin_port)]
    static["listeners"] = [_ready_listener(ready_port)]
    bootstrap["stats_sinks"] = [metrics_sink(token)]
    bootstrap["stats_flush_interval"] = f"{metering_seconds:g}s"
    return bootstrap


def envoy_args(gateway_key: str, concurrency: int) -> list[str]:
    """``--service-node`` repeats the node id the enrolled bootstrap already has (Kubernetes
    expands ``$(POD_NAME)`` from the downward API); the pod's token admits only that one."""
    return [
        "-c",
        BOOTSTRAP_PATH,
        "--concurrency",
        str(concurrency),
        "--service-node",
        f"{gateway_key}/$(POD_NAME)",
        "--service-cluster",
        gateway_key,
        "--drain-time-s",
        str(DRAIN_SECONDS),
        "--drain-strategy",
        "immediate",
        "--log-level",
        "info",
    ]


def drain_command(admin_port: int) -> list[str]:
    """The pre-stop hook: ask the admin to drain the listeners (POST, as admin mutations must
    be), then keep serving in-flight requests until the drain time is over. The official
    image has bash, whose ``/dev/tcp`` makes the request without curl."""
    request = (
        "POST /drain_listeners?graceful HTTP/1.1\\r\\nHost: localhost\\r\\n"
        "Content-Length: 0\\r\\nConnection: close\\r\\n\\r\\n"
    )
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{admin_port} && printf '{request}' >&3 && "
        f"timeout 2 cat <&3 >/dev/null; sleep {DRAIN_SECONDS}"
    )
    return ["/bin/bash", "-c", script]
