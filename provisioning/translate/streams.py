"""TCP and TLS listeners → Envoy listeners whose filter chains proxy whole connections.

A TCP listener's port has one chain: ``tcp_proxy`` to its TCPRoute's backends. A TLS listener
(mode Passthrough) reads the client's SNI with ``tls_inspector`` and picks the chain whose
``server_names`` has it (Envoy tries the exact name, then ``*.`` wildcards from the longest,
then the chain without names); the chain's ``tcp_proxy`` forwards the bytes untouched, so the
backend's own certificate answers the client. A name no chain takes closes the connection.
Several backends: ``weighted_clusters``, per connection.
"""

from provisioning.ir.types import Listener, StreamRoute
from provisioning.translate.types import LISTENER, TLS_INSPECTOR

TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def tcp_proxy(route: StreamRoute) -> dict:
    config: dict = {"@type": TCP_PROXY, "stat_prefix": route.name.replace("/", ".")}
    if len(route.backends) == 1:
        config["cluster"] = route.backends[0].cluster
    else:
        config["weighted_clusters"] = {
            "clusters": [{"name": b.cluster, "weight": b.weight} for b in route.backends]
        }
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": config}


def _chain(route: StreamRoute) -> dict:
    chain: dict = {"filters": [tcp_proxy(route)]}
    if route.server_name is None:  # TCP
        chain["name"] = route.name
    else:
        chain["name"] = f"{route.name}/sni/{route.server_name}"
        if route.server_name != "*":
            chain["filter_chain_match"] = {"server_names": [route.server_name]}
    return chain


def stream_listener(name: str, bind_port: int, address: str, listeners: list[Listener]) -> dict:
    """The Envoy listener for the TCP or TLS listeners on one port (no chain: no listener)."""
    routes = [route for listener in listeners for route in listener.stream_routes]
    envoy: dict = {
        "@type": LISTENER,
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": bind_port}},
        "filter_chains": [_chain(route) for route in routes],
    }
    if listeners[0].protocol == "TLS":
        envoy["listener_filters"] = [
            {"name": "envoy.filters.listener.tls_inspector",
             "typed_config": {"@type": TLS_INSPECTOR}},
        ]  # fmt: skip
    return envoy
