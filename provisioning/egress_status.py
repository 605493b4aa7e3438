"""Statuses when translation refuses an address under the egress policy: routes'
``ResolvedRefs`` (a refused backend) and SecurityPolicies' ``Accepted`` (a refused extAuth
backend or remoteJWKS URI, or an OpenID provider whose discovery failed, which only a compile
finds out).

The API refuses such addresses, so this only happens to rows stored before the policy (or
under a laxer one). The reconcile that compiled them says so on its gateway's routes and
policies, with the gateway's lock held: the lock order every writer uses (gateway first).
"""

import json

from gateways.models import Gateway, Route
from gateways.route_status import route_status
from gateways.services.common import store_status
from gateways.services.dependents import backend_names
from gateways.services.policies import refresh_policies
from gateways.validation.routes import referenced_backends
from provisioning.desired import StoredRoute, route_rows
from provisioning.ir.egress import jwks_refusals, refused_backends
from provisioning.ir.ext_auth import named_backends
from provisioning.ir.oidc import OidcInputs, oidc_problems


def refresh_refusals(gateway: Gateway, state, rows: dict | None = None) -> None:
    """``gateway``: locked by the caller; ``state``: its desired state, as compiled; ``rows``:
    its Route and Policy rows as ``load_desired_state`` read them under that lock (read
    again when not given). Every writer of a route or policy locks its gateway first, so
    under that lock they are current."""
    refused = refused_backends(state.backends, state.egress, state.resolved)
    routes = rows["routes"] if rows else route_rows(gateway)
    policies = rows["policies"] if rows else list(gateway.policies.all())
    _refresh_routes(gateway, refused, routes)
    if _policies_concerned(state, refused, policies):
        refresh_policies(gateway, state.oidc_providers)


def _policies_concerned(state, refused: dict, policies) -> bool:
    """Whether a policy names a refused address, or its status still says one was."""
    for policy in state.policies:
        spec = policy["spec"]
        if any(name in refused for _, name in named_backends(spec)):
            return True
        if jwks_refusals(spec, state.egress):
            return True
        if oidc_problems(policy["name"], spec, OidcInputs(state.oidc_providers), state.egress):
            return True
    return any(
        "egress policy" in text or "spec.oidc" in text
        for text in (json.dumps(policy.status) for policy in policies)
    )


def _refresh_routes(gateway: Gateway, refused: dict, routes: list[StoredRoute]) -> None:
    names = None
    for stored in routes:
        # Statuses are not decoded to find that none needs rewriting (10,000 of them took long).
        if not stored.ref_not_permitted and not (
            refused and {name for _, name in referenced_backends(stored.spec)} & refused.keys()
        ):
            continue
        route = Route.objects.get(pk=stored.pk)
        used = {name for _, name in referenced_backends(route.spec)}
        conditions = route.status.get("conditions", [])
        flagged = any(c.get("reason") == "RefNotPermitted" for c in conditions)
        if not (used & refused.keys()) and not flagged:
            continue
        names = names if names is not None else backend_names(gateway.tenant)
        listeners = gateway.spec.get("listeners", [])
        store_status(route, route_status(route.spec, names, listeners, route.generation,
                                         route.status, refused, route.kind))  # fmt: skip
