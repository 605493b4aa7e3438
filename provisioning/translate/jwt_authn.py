"""SecurityPolicy jwt → Envoy's jwt_authn filter, with a requirement per policy.

The filter (disabled by default) knows every provider of the gateway's applied policies, named
``<policy>/<provider>``, and one requirement per policy (a valid token of any of its
providers, or none at all with ``optional``); a route under a policy enables the filter with
its policy's requirement. A missing (unless optional), expired or badly signed token, or one
with another issuer or audience, answers 401
(Envoy answers a wrong audience 403: a local reply mapper makes it 401, as the others).
Claims named in ``claimToHeaders`` go upstream as headers. A remote JWKS is fetched by Envoy
through a cluster for its host, ``<tenant>/jwks/<hash of scheme, host and port>``.
"""

import hashlib
import ipaddress
from urllib.parse import urlsplit

from provisioning.ir.types import Cluster, Endpoint, GatewayIR, JwtProvider, Route
from provisioning.translate.types import CEL_FILTER, JWT_AUTHN, JWT_AUTHN_PER_ROUTE, per_route

FILTER = "envoy.filters.http.jwt_authn"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin(uri: str) -> tuple[str, str, int]:
    parsed = urlsplit(uri)
    return parsed.scheme, parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)


def origin_cluster(name: str, uri: str) -> Cluster:
    """A cluster for the origin of ``uri`` (an IP address as is, a host name through DNS; TLS
    with the host as SNI for https)."""
    scheme, host, port = origin(uri)
    return Cluster(
        name=name, kind="static" if is_ip(host) else "dns",
        endpoints=(Endpoint(host, port),), tls=scheme == "https",
        tls_sni=None if is_ip(host) or scheme != "https" else host,
    )  # fmt: skip


JWT_CACHE_SIZE = 1000


def jwks_cluster_name(tenant: str, uri: str) -> str:
    scheme, host, port = origin(uri)
    digest = hashlib.sha256(f"{scheme}://{host}:{port}".encode()).hexdigest()[:16]
    return f"{tenant}/jwks/{digest}"


def _provider(tenant: str, provider: JwtProvider) -> dict:
    envoy: dict = {}
    if provider.issuer:
        envoy["issuer"] = provider.issuer
    if provider.audiences:
        envoy["audiences"] = list(provider.audiences)
    if provider.jwks_uri:
        envoy["remote_jwks"] = {
            "http_uri": {"uri": provider.jwks_uri, "timeout": "5s",
                         "cluster": jwks_cluster_name(tenant, provider.jwks_uri)},
            "cache_duration": "300s",
        }  # fmt: skip
    else:
        envoy["local_jwks"] = {"inline_string": provider.local_jwks}
    envoy["forward"] = provider.forward
    if provider.headers:
        envoy["from_headers"] = [
            {"name": name, "value_prefix": prefix} if prefix else {"name": name}
            for name, prefix in provider.headers
        ]
    if provider.params:
        envoy["from_params"] = list(provider.params)
    if provider.cookies:
        envoy["from_cookies"] = list(provider.cookies)
    if provider.claim_to_headers:
        envoy["claim_to_headers"] = [{"header_name": header, "claim_name": claim}
                                     for header, claim in provider.claim_to_headers]  # fmt: skip
    if provider.payload_in_metadata:
        envoy["payload_in_metadata"] = provider.name
        if provider.space_delimited:
            envoy["normalize_payload_in_metadata"] = {
                "space_delimited_claims": list(provider.space_delimited)
            }
    # Verified tokens are cached per worker (until they expire): checking a signature on every
    # request halves an Envoy's throughput; with the cache the cost is ~10 %.
    envoy["jwt_cache_config"] = {"jwt_cache_size": JWT_CACHE_SIZE}
    return envoy


def _tenant(ir: GatewayIR) -> str:
    return ir.name.split("/")[0]


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    jwts = {route.jwt.requirement: route.jwt for route in routes if route.jwt}
    if not jwts:
        return None
    providers, requirements = {}, {}
    for name in sorted(jwts):
        names = []
        for provider in jwts[name].providers:
            providers[provider.name] = _provider(_tenant(ir), provider)
            names.append(provider.name)
        choices = [{"provider_name": n} for n in names]
        if jwts[name].optional:  # no token passes; an invalid one still fails
            choices.append({"allow_missing": {}})
        requirements[name] = (
            choices[0] if len(choices) == 1 else {"requires_any": {"requirements": choices}}
        )
    config = {"@type": JWT_AUTHN, "providers": providers, "requirement_map": requirements}
    return {"name": FILTER, "disabled": True, "typed_config": config}


def route_config(route: Route, envoy: dict) -> None:
    if route.jwt is None:
        return
    config = {"@type": JWT_AUTHN_PER_ROUTE, "requirement_name": route.jwt.requirement}
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)


def clusters(ir: GatewayIR) -> tuple[Cluster, ...]:
    """A cluster for the host of each remote JWKS the gateway's routes use."""
    found: dict[str, Cluster] = {}
    for route in ir.filter_routes():
        for provider in route.jwt.providers if route.jwt else ():
            if not provider.jwks_uri:
                continue
            name = jwks_cluster_name(_tenant(ir), provider.jwks_uri)
            found[name] = origin_cluster(name, provider.jwks_uri)
    return tuple(found[name] for name in sorted(found))


# The response code details jwt_authn gives a token for another audience (its 403).
WRONG_AUDIENCE = "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}"


def local_reply_mappers(routes: list[Route]) -> tuple[dict, ...]:
    """A token for another audience is as invalid as any other for the route: 401 (RFC 6750
    ``invalid_token``), not Envoy's 403, which Gantry keeps for authorization refusals."""
    if not any(p.audiences for route in routes if route.jwt for p in route.jwt.providers):
        return ()
    expression = f"response.code_details == '{WRONG_AUDIENCE}'"
    return ({
        "filter": {"extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {"@type": CEL_FILTER, "expression": expression},
        }},
        "status_code": 401,
        "headers_to_add": [{"header": {
            "key": "www-authenticate",
            "value": 'Bearer error="invalid_token", error_description="audience not allowed"',
        }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    },)  # fmt: skip
