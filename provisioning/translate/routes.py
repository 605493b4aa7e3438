"""IR routes and virtual hosts → Envoy RouteConfiguration."""

import json

from provisioning.ir import hostnames
from provisioning.ir.types import HeaderMatch, Listener, Route, VirtualHost
from provisioning.translate import local_rate_limit
from provisioning.translate.route_features import ROUTE_FEATURES
from provisioning.translate.types import FILTER_CONFIG, ROUTE_CONFIGURATION


def _string_match(match: HeaderMatch) -> dict:
    if match.kind == "RegularExpression":
        return {"safe_regex": {"regex": match.value}}
    return {"exact": match.value}


def route_match(route: Route) -> dict:
    path = route.path
    if path.kind == "Exact":
        match = {"path": path.value}
    elif path.kind == "RegularExpression":
        match = {"safe_regex": {"regex": path.value}}
    elif path.value.rstrip("/") == "":
        match = {"prefix": "/"}
    else:  # Gateway API prefixes match whole path segments: /foo matches /foo/x, not /foobar
        match = {"path_separated_prefix": path.value.rstrip("/")}
    headers = [{"name": h.name, "string_match": _string_match(h)} for h in route.headers]
    if route.method:
        headers.append({"name": ":method", "string_match": {"exact": route.method}})
    if headers:
        match["headers"] = headers
    if route.query_params:
        match["query_parameters"] = [
            {"name": q.name, "string_match": _string_match(q)} for q in route.query_params
        ]
    return match


def envoy_route(route: Route) -> dict:
    envoy = {"name": route.name, "match": route_match(route)}
    for feature in ROUTE_FEATURES:
        feature(route, envoy)
    return envoy


def route_configuration(name: str, listeners: list[Listener], memo=None) -> dict:
    """One RouteConfiguration for all listeners sharing a port.

    A domain claimed by several listeners on the port belongs to the most specific listener
    (Gateway API: a request is handled by the listener whose hostname matches it best).
    ``memo``: the gateway's last compile (``provisioning.compile_memo``).
    """
    owners: dict[str, tuple] = {}
    vhosts: dict[str, dict] = {}
    for listener in listeners:
        for vhost in listener.virtual_hosts:
            domain = vhost.domains[0]
            rank = hostnames.specificity(listener.hostname)
            if domain in owners and owners[domain] <= rank:
                continue
            owners[domain] = rank
            settings = listener.client_traffic
            bare = bool(settings and settings.disable_rate_limit_headers)
            if memo is None:
                vhosts[domain] = envoy_virtual_host(vhost, bare)
            else:
                vhosts[domain] = memo.envoy_host(
                    vhost, bare, lambda vhost=vhost, bare=bare: envoy_virtual_host(vhost, bare)
                )
    ordered = sorted(vhosts.values(), key=lambda v: hostnames.specificity(v["domains"][0]))
    return {"@type": ROUTE_CONFIGURATION, "name": name, "virtual_hosts": ordered}


def envoy_virtual_host(vhost: VirtualHost, without_rate_limit_headers: bool = False) -> dict:
    routes = [envoy_route(r) for r in vhost.routes]
    if without_rate_limit_headers:
        routes = [local_rate_limit.without_headers(route) for route in routes]
    return hoist_filter_configs(
        {"name": vhost.name, "domains": list(vhost.domains), "routes": routes}
    )


def hoist_filter_configs(vhost: dict) -> dict:
    """A per-filter config most routes of the virtual host carry (a gateway- or listener-wide
    policy) moves to the virtual host: Envoy then parses it once, not once per route. Routes
    with another config keep theirs; routes without one get an explicit ``disabled``, so no
    route's behaviour changes."""
    routes = vhost["routes"]
    counts: dict[tuple[str, str], int] = {}
    for route in routes:
        for name, config in route.get("typed_per_filter_config", {}).items():
            key = (name, json.dumps(config, sort_keys=True))
            counts[key] = counts.get(key, 0) + 1
    hoisted = {}
    for (name, text), count in sorted(counts.items()):
        if count * 2 > len(routes) and count > 1:
            hoisted[name] = json.loads(text)
    for name, config in hoisted.items():
        for route in routes:
            own = route.setdefault("typed_per_filter_config", {})
            if name not in own:
                own[name] = {"@type": FILTER_CONFIG, "disabled": True}
            elif own[name] == config:
                del own[name]
            if not own:
                del route["typed_per_filter_config"]
    if hoisted:
        vhost["typed_per_filter_config"] = hoisted
    return vhost
