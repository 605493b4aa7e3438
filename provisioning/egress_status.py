"""Routes' ``ResolvedRefs`` when translation refuses a backend under the egress policy.

The API refuses such backends, so this only happens to rows stored before the policy (or
under a laxer one). The reconcile that compiled them says so on the routes of its gateway,
with the gateway's lock held: the lock order every route writer uses (gateway, then routes).
"""

from gateways.models import Gateway
from gateways.route_status import route_status
from gateways.services.common import store_status
from gateways.services.dependents import backend_names
from gateways.validation.routes import referenced_backends
from provisioning.ir.egress import refused_backends


def refresh_route_refusals(gateway: Gateway, state) -> None:
    """``gateway``: locked by the caller; ``state``: its desired state, as compiled."""
    refused = refused_backends(state.backends, state.egress)
    routes = gateway.routes.select_for_update().order_by("pk")
    names = None
    for route in routes:
        used = {name for _, name in referenced_backends(route.spec)}
        conditions = route.status.get("conditions", [])
        flagged = any(c.get("reason") == "RefNotPermitted" for c in conditions)
        if not (used & refused.keys()) and not flagged:
            continue
        names = names if names is not None else backend_names(gateway.tenant)
        listeners = gateway.spec.get("listeners", [])
        store_status(route, route_status(route.spec, names, listeners, route.generation,
                                         route.status, refused))  # fmt: skip
