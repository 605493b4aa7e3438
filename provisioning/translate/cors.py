"""SecurityPolicy cors → Envoy's CORS filter, with a CorsPolicy per route.

The filter (disabled by default) is enabled by the routes a policy with ``cors`` applies to.
A preflight from an allowed origin is answered by Envoy with the Access-Control-* headers;
other requests from an allowed origin go upstream and their answers carry
Access-Control-Allow-Origin. An origin that is not allowed gets no CORS headers.
"""

from provisioning.ir.types import GatewayIR, Route
from provisioning.translate.types import CORS, CORS_POLICY, per_route

FILTER = "envoy.filters.http.cors"


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.cors for route in routes):
        return None
    return {"name": FILTER, "disabled": True, "typed_config": {"@type": CORS}}


def route_config(route: Route, envoy: dict) -> None:
    cors = route.cors
    if cors is None:
        return
    config: dict = {"@type": CORS_POLICY, "allow_origin_string_match": [
        {"exact": value} if kind == "Exact" else {"safe_regex": {"regex": value}}
        for kind, value in cors.origins
    ]}  # fmt: skip
    for field, values in (("allow_methods", cors.methods), ("allow_headers", cors.headers),
                          ("expose_headers", cors.expose_headers)):  # fmt: skip
        if values:
            config[field] = ", ".join(values)
    if cors.max_age_s is not None:
        config["max_age"] = str(cors.max_age_s)
    if cors.allow_credentials is not None:
        config["allow_credentials"] = cors.allow_credentials
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)
