"""SecurityPolicy extAuth → Envoy's ext_authz filter, one per policy (each names its own
authorization service), as Envoy Gateway does.

Each filter, ``envoy.filters.http.ext_authz/<policy>``, is disabled by default and enabled on
the routes its policy applies to. Envoy asks the service (through its backend's cluster) with
the request's method, its path after ``path_prefix``, and its Host, Authorization and
Content-Length headers plus ``headersToExtAuth``; a 200 lets the request through with the
answer's ``headersToBackend`` headers set on it, any other answer goes to the client as it is.
When the service cannot be asked (down, timed out), Envoy answers 403, or lets the request
through when ``failOpen``.

The headers a service vouches for (``headersToBackend``) are first removed from the request
(a header_mutation filter before the ext_authz filters, enabled on the same routes): Envoy sets
those the answer has and leaves the others as they were, so a client's own ``x-user`` would
otherwise reach the upstream when the service's answer lacks it.
"""

from provisioning.ir.types import ExtAuth, GatewayIR, Route
from provisioning.translate.types import (
    EXT_AUTHZ,
    EXT_AUTHZ_PER_ROUTE,
    HEADER_MUTATION_FILTER,
    HEADER_MUTATION_PER_ROUTE,
    duration,
    per_route,
)

FILTER = "envoy.filters.http.ext_authz"
CLEAR_FILTER = "envoy.filters.http.header_mutation/ext-auth-headers"


def filter_name(policy: str) -> str:
    return f"{FILTER}/{policy}"


def _exact(names: tuple[str, ...]) -> dict:
    return {"patterns": [{"exact": name} for name in names]}


def _config(ext_auth: ExtAuth) -> dict:
    if ext_auth.grpc:
        config = {"@type": EXT_AUTHZ, "transport_api_version": "V3",
                  "failure_mode_allow": ext_auth.fail_open,
                  "grpc_service": {"envoy_grpc": {"cluster_name": ext_auth.cluster},
                                   "timeout": duration(ext_auth.timeout_ms)}}  # fmt: skip
        if ext_auth.headers_to_ext_auth:
            config["allowed_headers"] = _exact(ext_auth.headers_to_ext_auth)
        return config
    service: dict = {
        "server_uri": {"uri": ext_auth.uri, "cluster": ext_auth.cluster,
                       "timeout": duration(ext_auth.timeout_ms)},
    }  # fmt: skip
    if ext_auth.path_prefix:
        service["path_prefix"] = ext_auth.path_prefix
    if ext_auth.headers_to_backend:
        service["authorization_response"] = {
            "allowed_upstream_headers": _exact(ext_auth.headers_to_backend)
        }
    config = {"@type": EXT_AUTHZ, "http_service": service, "transport_api_version": "V3",
              "failure_mode_allow": ext_auth.fail_open}  # fmt: skip
    if ext_auth.headers_to_ext_auth:
        config["allowed_headers"] = _exact(ext_auth.headers_to_ext_auth)
    return config


def http_filters(ir: GatewayIR, routes: list[Route]) -> tuple[dict, ...]:
    """One disabled filter per policy with extAuth that applies to one of ``routes``."""
    by_policy = {route.ext_auth.policy: route.ext_auth for route in routes if route.ext_auth}
    filters = tuple(
        {"name": filter_name(name), "disabled": True, "typed_config": _config(by_policy[name])}
        for name in sorted(by_policy)
    )
    if any(ext_auth.headers_to_backend for ext_auth in by_policy.values()):
        clear = {"name": CLEAR_FILTER, "disabled": True,
                 "typed_config": {"@type": HEADER_MUTATION_FILTER}}  # fmt: skip
        filters = (clear, *filters)
    return filters


def route_config(route: Route, envoy: dict) -> None:
    if route.ext_auth is None:
        return
    config = {"@type": EXT_AUTHZ_PER_ROUTE, "check_settings": {}}
    name = filter_name(route.ext_auth.policy)
    configs = envoy.setdefault("typed_per_filter_config", {})
    configs[name] = per_route(config)
    if route.ext_auth.headers_to_backend:
        removals = [{"remove": header} for header in route.ext_auth.headers_to_backend]
        clear = {"@type": HEADER_MUTATION_PER_ROUTE, "mutations": {"request_mutations": removals}}
        configs[CLEAR_FILTER] = per_route(clear)
