"""One small function per HTTPRoute feature, each patching the Envoy route it is given.

Registered in ``ROUTE_FEATURES``: adding a feature means adding a function there.
"""

import re

from provisioning.ir.types import HeaderOps, Route
from provisioning.translate import (
    api_key_auth,
    authorization,
    backend_traffic,
    basic_auth,
    cors,
    ext_authz,
    fault,
    global_rate_limit,
    grpc_json,
    jwt_authn,
    local_rate_limit,
    oauth2,
    stateful_session,
)
from provisioning.translate.types import duration

# The share of a rule's weight that belongs to missing backends is routed to a cluster without
# endpoints; the header marks those requests so the listener's local-reply mapper turns
# Envoy's 503 into the 500 Gateway API asks for.
INVALID_BACKEND_SUFFIX = "/invalid-backend"
INVALID_BACKEND_HEADER = "x-gantry-invalid-backend"

_REDIRECT_CODES = {
    301: "MOVED_PERMANENTLY",
    302: "FOUND",
    303: "SEE_OTHER",
    307: "TEMPORARY_REDIRECT",
    308: "PERMANENT_REDIRECT",
}


def _header_values(ops: HeaderOps) -> list[dict]:
    return [
        {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for k, v in ops.set
    ] + [
        {"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
        for k, v in ops.add
    ]


def _add_header_ops(target: dict, request: HeaderOps, response: HeaderOps) -> None:
    for ops, prefix in ((request, "request"), (response, "response")):
        if ops.set or ops.add:
            target[f"{prefix}_headers_to_add"] = _header_values(ops)
        if ops.remove:
            target[f"{prefix}_headers_to_remove"] = list(ops.remove)


def header_modifiers(route: Route, envoy: dict) -> None:
    _add_header_ops(envoy, route.request_headers, route.response_headers)


def _prefix_rewrite(match_prefix: str, replacement: str) -> dict:
    """Gateway API ReplacePrefixMatch; replacing with "/" must not leave a double slash."""
    prefix = match_prefix.rstrip("/")
    if replacement.rstrip("/") == "":
        pattern = "^" + re.escape(prefix) + "/*"
        return {"regex_rewrite": {"pattern": {"regex": pattern}, "substitution": "/"}}
    if not prefix:  # matched "/": the replacement becomes the first path element(s)
        return {"prefix_rewrite": replacement.rstrip("/") + "/"}
    return {"prefix_rewrite": replacement.rstrip("/")}


def redirect(route: Route, envoy: dict) -> None:
    if route.redirect is None:
        return
    spec = route.redirect
    action: dict = {"response_code": _REDIRECT_CODES[spec.status_code]}
    if spec.scheme:
        action["scheme_redirect"] = spec.scheme
    if spec.hostname:
        action["host_redirect"] = spec.hostname
    if spec.port:
        action["port_redirect"] = spec.port
    if spec.path_kind == "ReplaceFullPath":
        action["path_redirect"] = spec.path_value
    elif spec.path_kind == "ReplacePrefixMatch":
        rewrite = _prefix_rewrite(route.path.value, spec.path_value)
        if "prefix_rewrite" in rewrite:
            action["prefix_rewrite"] = rewrite["prefix_rewrite"]
        else:
            action["regex_rewrite"] = rewrite["regex_rewrite"]
    envoy.pop("route", None)
    envoy["redirect"] = action


def direct_response(route: Route, envoy: dict) -> None:
    if route.direct_response is None:
        return
    envoy.pop("route", None)
    envoy["direct_response"] = {"status": route.direct_response.status}


def backends(route: Route, envoy: dict) -> None:
    if not route.backends:
        return
    action = envoy.setdefault("route", {})
    only = route.backends[0]
    if len(route.backends) == 1 and not (only.request_headers or only.response_headers):
        action["cluster"] = only.cluster
    else:  # several, or one with its own header filters (which only a weighted cluster has)
        action["weighted_clusters"] = {"clusters": [_weighted(b) for b in route.backends]}


def _weighted(backend) -> dict:
    entry = {"name": backend.cluster, "weight": backend.weight}
    if backend.cluster.endswith(INVALID_BACKEND_SUFFIX):
        entry["request_headers_to_add"] = [
            {"header": {"key": INVALID_BACKEND_HEADER, "value": "1"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        ]  # fmt: skip
        return entry
    _add_header_ops(entry, backend.request_headers, backend.response_headers)
    return entry


def rewrite(route: Route, envoy: dict) -> None:
    if route.rewrite is None or "route" not in envoy:
        return
    action = envoy["route"]
    if route.rewrite.hostname:
        action["host_rewrite_literal"] = route.rewrite.hostname
    if route.rewrite.path_kind == "ReplaceFullPath":
        action["regex_rewrite"] = {
            "pattern": {"regex": "^/.*$"},
            "substitution": route.rewrite.path_value,
        }
    elif route.rewrite.path_kind == "ReplacePrefixMatch":
        action.update(_prefix_rewrite(route.path.value, route.rewrite.path_value))


def mirrors(route: Route, envoy: dict) -> None:
    if not route.mirrors or "route" not in envoy:
        return
    envoy["route"]["request_mirror_policies"] = [
        {"cluster": m.cluster, "runtime_fraction": {"default_value": _fraction(m)}}
        for m in route.mirrors
    ]


def _fraction(mirror) -> dict:
    """Envoy's fractions are of a hundred, ten thousand or a million: a Gateway API fraction
    of another denominator becomes the nearest millionths."""
    if mirror.denominator in (100, 10_000, 1_000_000):
        names = {100: "HUNDRED", 10_000: "TEN_THOUSAND", 1_000_000: "MILLION"}
        return {"numerator": mirror.numerator, "denominator": names[mirror.denominator]}
    return {"numerator": round(mirror.numerator * 1_000_000 / mirror.denominator),
            "denominator": "MILLION"}  # fmt: skip


def timeouts(route: Route, envoy: dict) -> None:
    if "route" not in envoy:
        return
    if route.timeout_ms is not None:
        envoy["route"]["timeout"] = duration(route.timeout_ms)
    if route.backend_timeout_ms is not None:
        envoy["route"].setdefault("timeout", duration(route.backend_timeout_ms))
        envoy["route"]["retry_policy"] = {
            "num_retries": 0,
            "per_try_timeout": duration(route.backend_timeout_ms),
        }
    if route.grpc:
        # Envoy's default of 15 s would cut every gRPC stream that lasts longer: a GRPCRoute
        # has no timeout unless a policy sets one. Envoy ends a call at the deadline its
        # client sent in grpc-timeout, which replaces the route's timeout, so it is capped by
        # the policy's (0s: no cap).
        limit = envoy["route"].setdefault("timeout", "0s")
        envoy["route"]["max_stream_duration"] = {"grpc_timeout_header_max": limit}


# Order matters: the action first (backends, then redirect or direct response replace it),
# then what patches the action; policies last, failing closed after everything else.
ROUTE_FEATURES = (
    backends, redirect, direct_response, rewrite, mirrors, timeouts, header_modifiers,
    backend_traffic.retry, backend_traffic.hash_policy, fault.route_config, cors.route_config,
    oauth2.route_config, ext_authz.route_config, api_key_auth.route_config, basic_auth.route_config,
    jwt_authn.route_config, authorization.route_config,
    local_rate_limit.route_config, global_rate_limit.route_config, stateful_session.route_config,
    grpc_json.route_config,
    backend_traffic.fail_closed,
)  # fmt: skip
