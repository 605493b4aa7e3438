"""ClientTrafficPolicy → Envoy: settings of a filter chain (its HTTP connection manager, its
connection limit, its TLS parameters) and of the Envoy listener (its buffer limit and TCP
keepalive).

HTTP listeners on one port share one filter chain; each HTTPS listener has its own (see
``provisioning.ir.client_traffic`` for how listeners of a port agree).
"""

import copy

from provisioning.ir.types import ClientTraffic
from provisioning.translate.types import duration

CONNECTION_LIMIT = (
    "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit"
)
ESCAPED_SLASHES = {"KeepUnchanged": "KEEP_UNCHANGED", "RejectRequest": "REJECT_REQUEST",
                   "UnescapeAndForward": "UNESCAPE_AND_FORWARD",
                   "UnescapeAndRedirect": "UNESCAPE_AND_REDIRECT"}  # fmt: skip
TLS_VERSIONS = {"Auto": "TLS_AUTO", "1.0": "TLSv1_0", "1.1": "TLSv1_1", "1.2": "TLSv1_2",
                "1.3": "TLSv1_3"}  # fmt: skip


def hcm_options(settings: ClientTraffic) -> dict:
    """Fields of the HttpConnectionManager."""
    options: dict = {}
    if settings.request_received_timeout_ms is not None:
        options["request_timeout"] = duration(settings.request_received_timeout_ms)
    if settings.idle_timeout_ms is not None:
        options["common_http_protocol_options"] = {
            "idle_timeout": duration(settings.idle_timeout_ms)
        }
    if settings.xff_num_trusted_hops is not None:
        options["xff_num_trusted_hops"] = settings.xff_num_trusted_hops
    if settings.preserve_request_id:
        options["preserve_external_request_id"] = True
    if settings.escaped_slashes:
        options["path_with_escaped_slashes_action"] = ESCAPED_SLASHES[settings.escaped_slashes]
    if not settings.merge_slashes:
        options["merge_slashes"] = False
    http2 = {
        "max_concurrent_streams": settings.h2_max_concurrent_streams,
        "initial_stream_window_size": settings.h2_initial_stream_window,
        "initial_connection_window_size": settings.h2_initial_connection_window,
    }
    http2 = {key: value for key, value in http2.items() if value is not None}
    if http2:
        options["http2_protocol_options"] = http2
    return options


def connection_limit(settings: ClientTraffic, stat_prefix: str) -> dict | None:
    """The network filter closing connections past the limit (counted per filter chain)."""
    if settings.connection_limit is None:
        return None
    config: dict = {
        "@type": CONNECTION_LIMIT,
        "stat_prefix": stat_prefix,
        "max_connections": settings.connection_limit,
    }
    if settings.connection_close_delay_ms is not None:
        config["delay"] = duration(settings.connection_close_delay_ms)
    return {"name": "envoy.filters.network.connection_limit", "typed_config": config}


def tls_options(settings: ClientTraffic) -> dict:
    """Fields of a DownstreamTlsContext's ``common_tls_context``."""
    params: dict = {}
    if settings.tls_min_version:
        params["tls_minimum_protocol_version"] = TLS_VERSIONS[settings.tls_min_version]
    if settings.tls_max_version:
        params["tls_maximum_protocol_version"] = TLS_VERSIONS[settings.tls_max_version]
    if settings.ciphers:
        params["cipher_suites"] = list(settings.ciphers)
    if settings.ecdh_curves:
        params["ecdh_curves"] = list(settings.ecdh_curves)
    options: dict = {"tls_params": params} if params else {}
    if settings.alpn_protocols:
        options["alpn_protocols"] = list(settings.alpn_protocols)
    return options


def configure_chain(chain: dict, settings: ClientTraffic | None, stat_prefix: str) -> dict:
    """``chain`` (whose last filter is the HCM) with ``settings``; ``chain`` is not changed."""
    if settings is None:
        return chain
    chain = copy.deepcopy(chain)
    hcm = chain["filters"][-1]["typed_config"]
    hcm.update(hcm_options(settings))
    limit = connection_limit(settings, stat_prefix)
    if limit:
        chain["filters"].insert(0, limit)
    socket = chain.get("transport_socket")
    if socket:
        socket["typed_config"]["common_tls_context"].update(tls_options(settings))
    return chain


# Linux socket option levels and names (socket(7), tcp(7)).
SOL_SOCKET, SO_KEEPALIVE = 1, 9
IPPROTO_TCP, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 6, 4, 5, 6


def keepalive_options(keepalive: tuple) -> list[dict]:
    """Socket options of the listening socket; accepted connections inherit them."""
    probes, idle, interval = keepalive
    wanted = [
        ("SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 1),
        ("TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, probes),
        ("TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, idle),
        ("TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, interval),
    ]
    return [
        {"description": label, "level": level, "name": name, "int_value": value,
         "state": "STATE_PREBIND"}
        for label, level, name, value in wanted if value is not None
    ]  # fmt: skip


def listener_options(settings: ClientTraffic | None) -> dict:
    """Fields of the Envoy Listener (shared by every listener on its port)."""
    options: dict = {}
    if settings is None:
        return options
    if settings.buffer_limit_bytes is not None:
        options["per_connection_buffer_limit_bytes"] = settings.buffer_limit_bytes
    if settings.tcp_keepalive is not None:
        options["socket_options"] = keepalive_options(settings.tcp_keepalive)
    return options
