"""Which policy applies where, with Envoy Gateway's precedence. Pure: shared by the compiler
and by the policies' status, so a status says exactly what the gateway does.

- A policy targets its gateway, one listener of it (``sectionName``), a route, or one rule of
  a route (``sectionName``: the rule's ``name``). For each rule of each route on each listener,
  the most specific policy of each kind applies, whole: the rule's, else the route's, else its
  listener's, else the gateway's (features are not merged across levels).
- Two policies of one kind targeting the same thing: the older one (then the name first in
  alphabetical order) wins; the other's target is ``Conflicted``.
- A route or listener that does not exist: that target is ``TargetNotFound``.
- A policy that cannot be translated (a SecurityPolicy naming a consumer, or an extAuth
  backend, that does not exist, or an extAuth backend or remoteJWKS URI the egress policy
  refuses, or an oidc provider whose discovery failed) still holds its targets, so they fail
  closed (a direct 500) instead of falling back to a less specific policy; its targets are
  ``Invalid``.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from provisioning.ir.egress import jwks_refusals
from provisioning.ir.ext_auth import named_backends
from provisioning.ir.oidc import OidcInputs, oidc_problems

ACCEPTED = "Accepted"
TARGET_NOT_FOUND = "TargetNotFound"
CONFLICTED = "Conflicted"
INVALID = "Invalid"


LEVELS = {"gateway": 0, "listener": 1, "route": 2, "rule": 3}


def scope_of(ref: dict) -> tuple:
    if ref["kind"] in ("HTTPRoute", "GRPCRoute"):  # route names are unique across both kinds
        if ref.get("sectionName"):
            return ("rule", ref["name"], ref["sectionName"])
        return ("route", ref["name"])
    if ref.get("sectionName"):
        return ("listener", ref["sectionName"])
    return ("gateway",)


def describe(scope: tuple) -> str:
    if scope[0] == "rule":
        return f"rule {scope[2]!r} of route {scope[1]!r}"
    return "the gateway" if scope == ("gateway",) else f"{scope[0]} {scope[1]!r}"


def named_consumers(spec: dict) -> list[tuple[str, str]]:
    """(JSON path, consumer name) of every consumer a SecurityPolicy names."""
    refs = []
    for index, ref in enumerate((spec.get("apiKeyAuth") or {}).get("credentialRefs", [])):
        refs.append((f"spec.apiKeyAuth.credentialRefs[{index}]", ref["name"]))
    for index, ref in enumerate((spec.get("basicAuth") or {}).get("users", [])):
        refs.append((f"spec.basicAuth.users[{index}]", ref["name"]))
    for index, rule in enumerate((spec.get("authorization") or {}).get("rules", [])):
        for position, ref in enumerate((rule.get("principal") or {}).get("consumers", [])):
            path = f"spec.authorization.rules[{index}].principal.consumers[{position}]"
            refs.append((path, ref["name"]))
    return refs


def translation_problem(
    policy: dict,
    consumers: Collection[str],
    backends: Collection[str] = (),
    refused: Mapping[str, str] | None = None,
    egress=None,
    oidc: OidcInputs | None = None,
) -> str | None:
    """Why ``policy`` cannot be translated, or None. ``refused``: backends the egress policy
    refuses (name → why); ``egress``: the policy its remoteJWKS URIs are checked against;
    ``oidc``: its OpenID providers' endpoints and which policies have a client secret."""
    refused = refused or {}
    missing = [
        f"{path}: consumer {name!r} does not exist"
        for path, name in named_consumers(policy["spec"])
        if name not in consumers
    ]
    for path, name in named_backends(policy["spec"]):
        if name in refused:
            missing.append(f"{path}: backend {name!r} is refused by the egress policy "
                           f"({refused[name]})")  # fmt: skip
        elif name not in backends:
            missing.append(f"{path}: backend {name!r} does not exist")
    missing += jwks_refusals(policy["spec"], egress)
    missing += oidc_problems(policy["name"], policy["spec"], oidc, egress)
    return "; ".join(missing) or None


@dataclass(frozen=True)
class TargetResult:
    ref: dict
    reason: str  # Accepted | TargetNotFound | Conflicted | Invalid
    message: str
    overridden_for: tuple[str, ...] = ()  # what a more specific policy of the kind covers


@dataclass(frozen=True)
class Resolution:
    claims: dict = field(default_factory=dict)  # (kind, scope) → policy name
    results: dict = field(default_factory=dict)  # policy name → [TargetResult]
    problems: dict = field(default_factory=dict)  # policy name → why it cannot be translated

    def effective(self, kind: str, listener: str, route: str, rule: str | None = None):
        """The policy of ``kind`` for ``rule`` (its name, if it has one) of ``route`` as served
        by ``listener``, or None."""
        scopes = (("rule", route, rule), ("route", route), ("listener", listener), ("gateway",))
        for scope in scopes:
            name = self.claims.get((kind, scope))
            if name is not None:
                return name
        return None


@dataclass(frozen=True)
class KnownRoute:
    """What a policy's targetRef is checked against: the route's kind and its rules' names."""

    kind: str
    rules: frozenset[str]


# Policies act on HTTP requests: a TCPRoute, TLSRoute or DubboRoute is no target
# (TargetNotFound).
STREAM_ROUTE_KINDS = ("TCPRoute", "TLSRoute", "DubboRoute")


def _missing(ref: dict, scope: tuple, routes: dict, listener_names: Collection[str]):
    """Why ``ref`` names nothing on the gateway, or None. A route of the other kind of the
    same name is not the target: route names are shared by HTTPRoutes and GRPCRoutes, so a
    ``kind: HTTPRoute`` ref must not reach a GRPCRoute (its policies are written for HTTP)."""
    if scope[0] in ("route", "rule"):
        route = routes.get(scope[1])
        if route is None:
            return f"{describe(scope)} does not exist"
        if route.kind != ref["kind"]:
            return f"{ref['kind']} {scope[1]!r} does not exist ({scope[1]!r} is a {route.kind})"
        if scope[0] == "rule" and scope[2] not in route.rules:
            return f"{describe(scope)} does not exist"
        return None
    if scope[0] == "listener" and scope[1] not in listener_names:
        return f"{describe(scope)} does not exist"
    return None


def rule_names(routes: list[dict]) -> dict[str, KnownRoute]:
    """Route name → its kind and the names of its rules ({"name", "spec", "kind"} routes, as
    stored; no kind means HTTPRoute)."""
    return {
        route["name"]: KnownRoute(
            route.get("kind", "HTTPRoute"),
            frozenset(rule["name"] for rule in route["spec"].get("rules", []) if "name" in rule),
        )
        for route in routes
        if route.get("kind") not in STREAM_ROUTE_KINDS
    }


def resolve(
    policies: list[dict],
    routes: dict[str, KnownRoute],
    listener_names: Collection[str],
    consumers: Collection[str],
    backends: Collection[str] = (),
    refused: Mapping[str, str] | None = None,
    egress=None,
    oidc: OidcInputs | None = None,
) -> Resolution:
    """``policies``: {"name", "kind", "spec"}, oldest first (ties broken by name); ``routes``:
    route name → its kind and rule names (``rule_names``); ``backends``: the tenant's backends
    (those the policies name, at least); ``refused``, ``egress``: see ``translation_problem``."""
    claims: dict = {}
    results: dict = {}
    problems = {
        p["name"]: translation_problem(p, consumers, backends, refused, egress, oidc)
        for p in policies
    }
    problems = {name: problem for name, problem in problems.items() if problem}
    for policy in policies:
        outcome = []
        for ref in policy["spec"].get("targetRefs", []):
            scope = scope_of(ref)
            key = (policy["kind"], scope)
            missing = _missing(ref, scope, routes, listener_names)
            if missing:
                outcome.append(TargetResult(ref, TARGET_NOT_FOUND, missing))
            elif key in claims:
                message = f"{policy['kind']} {claims[key]!r} already targets {describe(scope)}"
                outcome.append(TargetResult(ref, CONFLICTED, message))
            else:
                claims[key] = policy["name"]
                outcome.append(None)  # decided below, once every claim is known
        results[policy["name"]] = outcome
    for policy in policies:
        refs = policy["spec"].get("targetRefs", [])
        results[policy["name"]] = [
            result or _held(policy, ref, claims, problems.get(policy["name"]))
            for ref, result in zip(refs, results[policy["name"]], strict=True)
        ]
    return Resolution(claims=claims, results=results, problems=problems)


def _held(policy: dict, ref: dict, claims: dict, problem: str | None) -> TargetResult:
    scope = scope_of(ref)
    if problem:
        return TargetResult(ref, INVALID, f"{problem}. Requests to {describe(scope)} are "
                            "answered with 500 until it is fixed.")  # fmt: skip
    rank = LEVELS[scope[0]]
    overriding = sorted(
        describe(other)
        for (kind, other), name in claims.items()
        if kind == policy["kind"] and name != policy["name"]
        and LEVELS[other[0]] > rank
    )  # fmt: skip
    return TargetResult(ref, ACCEPTED, f"applied to {describe(scope)}", tuple(overriding))
