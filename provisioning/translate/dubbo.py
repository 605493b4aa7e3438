"""IR Dubbo listeners → Envoy listeners running the ``dubbo_proxy`` network filter. Pure.

Dubbo 2 protocol framing, Hessian2 serialization. Each IR ``DubboRoute`` becomes one route
configuration of the filter's ``multiple_route_config`` (interface, group, version), with one
route (the method, the attachments as headers); Envoy tries them in order and takes the first
whose interface, group, version, method and attachments all match. A call none matches is
answered by Envoy with a Dubbo response of status 60 (SERVICE_NOT_FOUND), "dubbo router: no
route for interface '…'", and the connection stays open.
"""

from provisioning.ir.types import DubboRoute, HeaderMatch, Listener
from provisioning.translate.types import LISTENER

FILTER = "envoy.filters.network.dubbo_proxy"
DUBBO_PROXY = "type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy"
ROUTER_FILTER = "envoy.filters.dubbo.router"
DUBBO_ROUTER = "type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.router.v3.Router"
ANY_METHOD = ".*"  # a route without a method: every method name


def _string_match(match: HeaderMatch) -> dict:
    if match.kind == "RegularExpression":
        return {"safe_regex": {"regex": match.value}}
    return {"exact": match.value}


def _action(route: DubboRoute) -> dict:
    if len(route.backends) == 1:
        return {"cluster": route.backends[0].cluster}
    return {"weighted_clusters": {"clusters": [
        {"name": backend.cluster, "weight": backend.weight} for backend in route.backends
    ]}}  # fmt: skip


def route_config(route: DubboRoute) -> dict:
    name = {"exact": route.method} if route.method else {"safe_regex": {"regex": ANY_METHOD}}
    match: dict = {"method": {"name": name}}
    if route.attachments:
        match["headers"] = [
            {"name": item.name, "string_match": _string_match(item)} for item in route.attachments
        ]
    config: dict = {"name": route.name, "interface": route.service}
    if route.group is not None:
        config["group"] = route.group
    if route.version is not None:
        config["version"] = route.version
    config["routes"] = [{"match": match, "route": _action(route)}]
    return config


def dubbo_proxy(name: str, listener: Listener) -> dict:
    return {
        "name": FILTER,
        "typed_config": {
            "@type": DUBBO_PROXY,
            "stat_prefix": name.replace("/", "."),
            "protocol_type": "Dubbo",
            "serialization_type": "Hessian2",
            "multiple_route_config": {
                "name": name,
                "route_config": [route_config(route) for route in listener.dubbo_routes],
            },
            "dubbo_filters": [{"name": ROUTER_FILTER, "config": {"@type": DUBBO_ROUTER}}],
        },
    }


def envoy_listener(name: str, bind_port: int, address: str, listener: Listener) -> dict:
    """The Envoy listener of a gateway's Dubbo listener (one per port)."""
    return {
        "@type": LISTENER,
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": bind_port}},
        "filter_chains": [{"filters": [dubbo_proxy(name, listener)]}],
    }
