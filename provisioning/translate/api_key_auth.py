"""SecurityPolicy apiKeyAuth → Envoy's api_key_auth filter.

The filter (disabled by default) holds every key the gateway's applied policies accept, each
naming its consumer; a route under a policy enables it with its own key sources, its allowed
consumers and the header that carries the consumer's name upstream. An unknown or missing key
answers 401, a known key of a consumer the route does not allow 403.
"""

from provisioning.ir.types import GatewayIR, Route
from provisioning.translate.types import API_KEY_AUTH, API_KEY_AUTH_PER_ROUTE, per_route

FILTER = "envoy.filters.http.api_key_auth"


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.api_key_auth for route in routes):
        return None
    credentials = [{"key": c.key, "client": c.client} for c in ir.api_keys]
    return {"name": FILTER, "disabled": True,
            "typed_config": {"@type": API_KEY_AUTH, "credentials": credentials}}  # fmt: skip


def route_config(route: Route, envoy: dict) -> None:
    auth = route.api_key_auth
    if auth is None:
        return
    sources = ([{"header": h} for h in auth.headers] + [{"query": p} for p in auth.params]
               + [{"cookie": c} for c in auth.cookies])  # fmt: skip
    config: dict = {"@type": API_KEY_AUTH_PER_ROUTE, "key_sources": sources}
    if auth.clients:  # else every consumer in the filter-wide list
        config["allowed_clients"] = list(auth.clients)
    config["forwarding"] = {"header": auth.forward_header, "hide_credentials": auth.sanitize}
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)
