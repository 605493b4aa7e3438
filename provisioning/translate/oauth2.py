"""SecurityPolicy oidc → Envoy's oauth2 filter, one per policy (each has its own provider,
client and cookies), as Envoy Gateway does.

Each filter, ``envoy.filters.http.oauth2/<policy>``, is disabled by default and enabled on the
routes its policy applies to. A request without valid cookies is redirected (302) to the
provider's authorization endpoint; the provider sends the browser back to ``redirect_uri``,
whose path the filter answers: it trades the code for tokens at the token endpoint (through
the cluster ``<tenant>/oidc/<hash of scheme, host and port>``), sets its cookies (signed with
the policy's HMAC key) and redirects to the page first asked for. ``logout_path`` clears them.

The client secret and the HMAC key are never in the listener: the filter names them as SDS
secrets, ``<tenant>/<gateway>/oidc/<policy>/client-secret`` and ``…/hmac``, which the xDS
server sends over the same ADS stream (``secrets``), and only to that gateway's Envoys.
"""

import hashlib

from provisioning.ir.types import Cluster, GatewayIR, Oidc, Route
from provisioning.translate.jwt_authn import origin, origin_cluster
from provisioning.translate.types import FILTER_CONFIG, OAUTH2, SECRET

FILTER = "envoy.filters.http.oauth2"
TOKEN_TIMEOUT = "10s"
ADS = {"ads": {}, "resource_api_version": "V3"}
COOKIES = ("bearer_token", "oauth_hmac", "oauth_expires", "id_token", "refresh_token",
           "oauth_nonce", "code_verifier")  # fmt: skip
COOKIE_NAMES = ("BearerToken", "OauthHMAC", "OauthExpires", "IdToken", "RefreshToken",
                "OauthNonce", "CodeVerifier")  # fmt: skip


def filter_name(policy: str) -> str:
    return f"{FILTER}/{policy}"


def secret_name(gateway: str, policy: str, what: str) -> str:
    """``gateway``: ``<tenant>/<gateway>``; ``what``: ``client-secret`` or ``hmac``."""
    return f"{gateway}/oidc/{policy}/{what}"


def token_cluster_name(tenant: str, uri: str) -> str:
    scheme, host, port = origin(uri)
    digest = hashlib.sha256(f"{scheme}://{host}:{port}".encode()).hexdigest()[:16]
    return f"{tenant}/oidc/{digest}"


def _tenant(ir: GatewayIR) -> str:
    return ir.name.split("/")[0]


def _cookie_names(policy: str) -> dict:
    """Envoy's cookie names with a suffix per policy: two policies on one host never read
    each other's cookies."""
    suffix = hashlib.sha256(policy.encode()).hexdigest()[:8]
    return {field: f"{name}-{suffix}" for field, name in zip(COOKIES, COOKIE_NAMES, strict=True)}


def _config(ir: GatewayIR, oidc: Oidc) -> dict:
    credentials: dict = {
        "client_id": oidc.client_id,
        "token_secret": {"name": secret_name(ir.name, oidc.policy, "client-secret"),
                         "sds_config": ADS},
        "hmac_secret": {"name": secret_name(ir.name, oidc.policy, "hmac"), "sds_config": ADS},
        "cookie_names": _cookie_names(oidc.policy),
    }  # fmt: skip
    if oidc.cookie_domain:
        credentials["cookie_domain"] = oidc.cookie_domain
    config = {
        "token_endpoint": {"uri": oidc.token_endpoint, "timeout": TOKEN_TIMEOUT,
                           "cluster": token_cluster_name(_tenant(ir), oidc.token_endpoint)},
        "authorization_endpoint": oidc.authorization_endpoint,
        "redirect_uri": oidc.redirect_uri,
        "redirect_path_matcher": {"path": {"exact": oidc.redirect_path}},
        "signout_path": {"path": {"exact": oidc.logout_path}},
        "credentials": credentials,
        "forward_bearer_token": oidc.forward_access_token,
        "auth_scopes": list(oidc.scopes),
        "auth_type": "BASIC_AUTH" if oidc.basic_auth else "URL_ENCODED_BODY",
        "use_refresh_token": False,
        "stat_prefix": oidc.policy,
    }  # fmt: skip
    return {"@type": OAUTH2, "config": config}


def _by_policy(routes: list[Route]) -> dict[str, Oidc]:
    return {route.oidc.policy: route.oidc for route in routes if route.oidc}


def http_filters(ir: GatewayIR, routes: list[Route]) -> tuple[dict, ...]:
    """One disabled filter per policy with oidc that applies to one of ``routes``."""
    by_policy = _by_policy(routes)
    return tuple(
        {"name": filter_name(name), "disabled": True, "typed_config": _config(ir, by_policy[name])}
        for name in sorted(by_policy)
    )


def route_config(route: Route, envoy: dict) -> None:
    """Enables the policy's filter. It has no per-route settings: an empty config (an ``Any``
    naming no type) enables it with its own, as Envoy Gateway does."""
    if route.oidc is None:
        return
    enable = {"@type": FILTER_CONFIG, "config": {}}
    envoy.setdefault("typed_per_filter_config", {})[filter_name(route.oidc.policy)] = enable


def _all(ir: GatewayIR) -> dict[str, Oidc]:
    return _by_policy(ir.filter_routes())


def clusters(ir: GatewayIR) -> tuple[Cluster, ...]:
    """A cluster for the host of each token endpoint the gateway's routes use."""
    found: dict[str, Cluster] = {}
    for oidc in _all(ir).values():
        name = token_cluster_name(_tenant(ir), oidc.token_endpoint)
        found[name] = origin_cluster(name, oidc.token_endpoint)
    return tuple(found[name] for name in sorted(found))


def secrets(ir: GatewayIR) -> tuple[dict, ...]:
    """The SDS Secrets of the gateway's oauth2 filters: each policy's client secret and HMAC
    key (generic secrets, inline: they travel only over the gateway's own ADS stream)."""
    found = []
    for name, oidc in sorted(_all(ir).items()):
        for what, value in (("client-secret", oidc.client_secret), ("hmac", oidc.hmac_secret)):
            found.append({"@type": SECRET, "name": secret_name(ir.name, name, what),
                          "generic_secret": {"secret": {"inline_string": value}}})  # fmt: skip
    return tuple(found)
