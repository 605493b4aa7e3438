"""IR listeners → Envoy Listeners: one per port, HTTPS terminated with SNI per certificate."""

from provisioning.ir.policy_build import CONSUMER_HEADER
from provisioning.ir.types import Listener
from provisioning.translate import client_traffic
from provisioning.translate.access_log import DEFAULT_PATH, access_log
from provisioning.translate.route_features import INVALID_BACKEND_HEADER
from provisioning.translate.types import (
    DOWNSTREAM_TLS,
    HCM,
    HEADER_MUTATION,
    LISTENER,
    ROUTER,
    TLS_INSPECTOR,
)


def http_connection_manager(
    stat_prefix: str,
    route_config_name: str,
    invalid_backends: bool = False,
    http_filters: tuple[dict, ...] = (),
    reply_mappers: tuple[dict, ...] = (),
    access_log_path: str = DEFAULT_PATH,
) -> dict:
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",  # HTTP/1.1 and HTTP/2 (h2c prior knowledge, or h2 by ALPN)
            "strip_any_host_port": True,
            "use_remote_address": True,
            # Paths are normalized before routes and policies see them (RFC 3986 dot segments
            # and percent-decoding of unreserved characters; adjacent slashes merged; an
            # escaped slash redirected to its unescaped path): "/public/../admin", "//admin"
            # and "/%61dmin" are the admin route's, with its policies. Envoy Gateway's defaults.
            "normalize_path": True,
            "merge_slashes": True,
            "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
            # WebSocket upgrades are proxied by default (as in Envoy Gateway).
            "upgrade_configs": [{"upgrade_type": "websocket"}],
            "access_log": access_log(access_log_path),
            "rds": {
                "route_config_name": route_config_name,
                "config_source": {"ads": {}, "resource_api_version": "V3"},
            },
            # The consumer's name is only ever what Gantry's auth filters put there.
            "early_header_mutation_extensions": [{
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {"@type": HEADER_MUTATION,
                                 "mutations": [{"remove": CONSUMER_HEADER}]},
            }],
            "http_filters": [
                *http_filters,
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
            ],
        },
    }  # fmt: skip
    mappers = list(reply_mappers)
    if invalid_backends:
        mappers.append({
            "filter": {"header_filter": {"header": {
                "name": INVALID_BACKEND_HEADER, "present_match": True}}},
            "status_code": 500,
        })  # fmt: skip
    if mappers:
        hcm["typed_config"]["local_reply_config"] = {"mappers": mappers}
    return hcm


def _tls_chain(listener: Listener, hcm: dict) -> dict:
    context = {
        "@type": DOWNSTREAM_TLS,
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificates": [
                {
                    "certificate_chain": {"inline_string": cert.certificate_chain},
                    "private_key": {"inline_string": cert.private_key},
                }
                for cert in listener.certificates
            ],
        },
    }
    chain: dict = {
        "name": listener.name,
        "filters": [hcm],
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": context},
    }
    if listener.hostname:
        chain["filter_chain_match"] = {"server_names": [listener.hostname]}
    return chain


def envoy_listener(
    name: str,
    port: int,
    bind_port: int,
    address: str,
    listeners: list[Listener],
    invalid_backends: bool = False,
    http_filters: tuple[dict, ...] = (),
    reply_mappers: tuple[dict, ...] = (),
    access_log_path: str = DEFAULT_PATH,
) -> dict:
    """The Envoy listener for every gateway listener on ``port``; ``name`` names its routes."""
    hcm = http_connection_manager(name.replace("/", "."), name, invalid_backends, http_filters,
                                  reply_mappers, access_log_path)  # fmt: skip
    envoy: dict = {
        "@type": LISTENER,
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": bind_port}},
    }
    if listeners[0].protocol == "HTTPS":
        envoy["listener_filters"] = [
            {
                "name": "envoy.filters.listener.tls_inspector",
                "typed_config": {"@type": TLS_INSPECTOR},
            }
        ]
        envoy["filter_chains"] = [
            client_traffic.configure_chain(_tls_chain(listener, hcm), listener.client_traffic,
                                           listener.name.replace("/", "."))
            for listener in listeners if listener.certificates
        ]  # fmt: skip
    else:  # HTTP listeners on a port share a chain, and their ClientTrafficPolicy settings
        envoy["filter_chains"] = [client_traffic.configure_chain(
            {"filters": [hcm]}, listeners[0].client_traffic, name.replace("/", "."))]  # fmt: skip
    envoy.update(client_traffic.listener_options(listeners[0].client_traffic))
    return envoy
