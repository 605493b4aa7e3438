"""SecurityPolicy oidc → IR. Pure: the provider's discovered endpoints and the policy's secrets
come with the desired state (``provisioning.desired``, ``provisioning.oidc_discovery``)."""

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gateways.egress import EgressPolicy
from provisioning.ir.types import Oidc

# An Envoy request formatter (``%REQ(:authority)%``) or a plain scheme and authority.
FORMATTER = r"%REQ\([A-Za-z0-9:_-]{1,64}\)%"
REDIRECT_URL = re.compile(
    rf"(?P<scheme>https?|{FORMATTER})://(?P<authority>(?:{FORMATTER}|[A-Za-z0-9.\-:\[\]])+)"
    r"(?P<path>/[A-Za-z0-9\-._~!$&'()*+,;=:@/]{0,1023})"
)


def redirect_path(url: str) -> str:
    """The path of a ``redirectURL`` (where the provider sends the browser back)."""
    return REDIRECT_URL.fullmatch(url).group("path")


@dataclass(frozen=True)
class OidcInputs:
    """What translating ``oidc`` needs besides the spec: ``discovered``, issuer → endpoints
    (or ``{"error": why}``); ``with_secrets``, the policies whose client secret is stored
    (None: not checked); ``complete``: an issuer missing from ``discovered`` is a problem
    (at compile time), not merely unknown yet (a status computed when a policy is written)."""

    discovered: Mapping[str, dict]
    with_secrets: Collection[str] | None = None
    complete: bool = True


def needs_discovery(spec: dict) -> str | None:
    """The issuer whose discovery document ``spec`` (a SecurityPolicy's) needs, or None."""
    oidc = spec.get("oidc")
    if not oidc:
        return None
    provider = oidc["provider"]
    if provider.get("authorizationEndpoint") and provider.get("tokenEndpoint"):
        return None
    return provider["issuer"]


def oidc_problems(name: str, spec: dict, inputs: OidcInputs | None,
                  egress: EgressPolicy | None) -> list[str]:  # fmt: skip
    """``path: why`` for each reason the policy's ``oidc`` cannot be translated."""
    oidc = spec.get("oidc")
    if not oidc:
        return []
    found = []
    provider = oidc["provider"]
    for field in ("issuer", "tokenEndpoint"):
        reason = egress.check_uri(provider[field]) if egress and provider.get(field) else None
        if reason:
            found.append(f"spec.oidc.provider.{field}: refused by the egress policy ({reason})")
    issuer = needs_discovery(spec)
    if inputs is None:
        return found
    if issuer is not None:
        discovered = inputs.discovered.get(issuer)
        if discovered is None and inputs.complete:
            found.append("spec.oidc.provider.issuer: the discovery document was not read")
        elif discovered is not None and "error" in discovered:
            found.append(f"spec.oidc.provider.issuer: discovery failed: {discovered['error']}")
    if inputs.with_secrets is not None and name not in inputs.with_secrets:
        found.append("spec.oidc.clientSecret: no client secret is stored")
    return found


def build_oidc(policy: str, spec: dict, secrets: dict, discovered: dict | None) -> Oidc:
    """``spec``: the policy's ``oidc``, with nothing in ``oidc_problems``; ``secrets``: the
    policy's stored ones; ``discovered``: its issuer's endpoints when it needs them."""
    provider = spec["provider"]
    found = discovered or {}
    methods = found.get("authMethods", ["client_secret_basic"])
    return Oidc(
        policy=policy, client_id=spec["clientID"],
        client_secret=secrets["oidcClientSecret"], hmac_secret=secrets["oidcHmacSecret"],
        authorization_endpoint=provider.get("authorizationEndpoint")
        or found["authorizationEndpoint"],
        token_endpoint=provider.get("tokenEndpoint") or found["tokenEndpoint"],
        scopes=tuple(spec.get("scopes", ["openid"])),
        redirect_uri=spec["redirectURL"], redirect_path=redirect_path(spec["redirectURL"]),
        logout_path=spec["logoutPath"], cookie_domain=spec.get("cookieDomain"),
        forward_access_token=spec.get("forwardAccessToken", False),
        basic_auth="client_secret_basic" in methods or "client_secret_post" not in methods,
    )  # fmt: skip
