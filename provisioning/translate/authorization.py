"""SecurityPolicy authorization → Envoy's RBAC filter, with a policy per route.

Envoy Gateway's semantics — the first rule whose principal matches decides, else the default
action — as one Envoy ALLOW policy: a request is allowed when an Allow rule matches and no
Deny rule before it does, or when no Deny rule matches and the default is Allow. A rule's
principal and operation are all Envoy principals (the policy's permission is any request).
Client CIDRs match the downstream remote address (the peer's, or the one X-Forwarded-For gives
with a ClientTrafficPolicy's trusted hops); headers and methods match the request's;
consumers match the header the policy's apiKeyAuth or basicAuth put the authenticated
consumer's name in (a client's own value is removed before any filter); JWT claims match
the payload jwt_authn (which runs first) keeps in the request's metadata. Refused: 403.
"""

from provisioning.ir.types import AuthorizationRule, GatewayIR, JwtPrincipal, Route
from provisioning.translate.types import RBAC, RBAC_PER_ROUTE, per_route

FILTER = "envoy.filters.http.rbac"
JWT_FILTER = "envoy.filters.http.jwt_authn"
NOBODY = {"not_id": {"any": True}}


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.authorization for route in routes):
        return None
    return {"name": FILTER, "disabled": True, "typed_config": {"@type": RBAC}}


def _any_of(ids: list[dict]) -> dict:
    return ids[0] if len(ids) == 1 else {"or_ids": {"ids": ids}}


def _all_of(ids: list[dict]) -> dict:
    flat = [part for id_ in ids for part in (id_["and_ids"]["ids"] if "and_ids" in id_ else [id_])]
    return flat[0] if len(flat) == 1 else {"and_ids": {"ids": flat}}


def _header(name: str, value: str) -> dict:
    return {"header": {"name": name, "string_match": {"exact": value}}}


def _matches(rule: AuthorizationRule) -> dict:
    parts = []
    if rule.cidrs:
        parts.append(_any_of([{"remote_ip": {"address_prefix": address, "prefix_len": length}}
                              for address, length in rule.cidrs]))  # fmt: skip
    for name, values in rule.headers:
        parts.append(_any_of([_header(name, value) for value in values]))
    if rule.methods:
        parts.append(_any_of([_header(":method", method) for method in rule.methods]))
    if rule.consumers:
        parts.append(_any_of([_header(rule.consumer_header, name) for name in rule.consumers]))
    if rule.jwt:
        parts.append(_jwt(rule.jwt))
    return _all_of(parts)


def _claim(provider: str, path: tuple[str, ...], value: str, array: bool) -> dict:
    match = {"string_match": {"exact": value}}
    return {"metadata": {
        "filter": JWT_FILTER,
        "path": [{"key": key} for key in (provider, *path)],
        "value": {"list_match": {"one_of": match}} if array else match,
    }}  # fmt: skip


def _jwt(principal: JwtPrincipal) -> dict:
    """Claims of the token jwt_authn verified, from the payload it keeps in the request's
    metadata under the provider's name: every scope, and every claim with any of its values."""
    parts = [_claim(principal.provider, ("scope",), scope, True) for scope in principal.scopes]
    for claim in principal.claims:
        parts.append(_any_of([_claim(principal.provider, claim.path, value, claim.array)
                              for value in claim.values]))  # fmt: skip
    return _all_of(parts)


def _not(rule: AuthorizationRule) -> dict:
    """A fresh object each time (shared ones would print as YAML anchors)."""
    return {"not_id": _matches(rule)}


def principals(default_allow: bool, rules: tuple[AuthorizationRule, ...]) -> list[dict]:
    """Who is allowed, as Envoy principals (any one of them suffices)."""
    allowed, denied_before = [], []
    for rule in rules:
        if rule.allow:
            allowed.append(_all_of([_matches(rule)] + [_not(d) for d in denied_before]))
        else:
            denied_before.append(rule)
    if default_allow:
        allowed.append(_all_of([_not(d) for d in denied_before]) if denied_before
                       else {"any": True})  # fmt: skip
    return allowed or [NOBODY]


def route_config(route: Route, envoy: dict) -> None:
    authz = route.authorization
    if authz is None:
        return
    policy = {"permissions": [{"any": True}],
              "principals": principals(authz.default_allow, authz.rules)}  # fmt: skip
    rules = {"action": "ALLOW", "policies": {"authorization": policy}}
    config = {"@type": RBAC_PER_ROUTE, "rbac": {"rules": rules}}
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)
