"""DubboRoutes → IR (Dubbo listeners only). Pure.

Each match of each rule becomes one ``DubboRoute``; Envoy tries them in the order
``precedence`` gives (the most specific first) and the first that matches takes the call.
"""

from gateways.validation.routes import is_backend_kind
from provisioning.ir.names import cluster_name
from provisioning.ir.types import DubboRoute, HeaderMatch, WeightedBackend

DUBBO = "DubboRoute"


def is_dubbo(route: dict) -> bool:
    return route.get("kind") == DUBBO


def backends(refs: list[dict], existing, tenant: str, invalid: str) -> tuple[WeightedBackend, ...]:
    """Weighted backends; the share of missing ones (all of it when none exists) goes to
    ``invalid``, a cluster without endpoints: those calls get a Dubbo error answer."""
    weighted = [ref for ref in refs if ref.get("weight", 1) > 0]
    usable = [ref for ref in weighted if ref["name"] in existing and is_backend_kind(ref)]
    valid = tuple(
        WeightedBackend(cluster_name(tenant, ref["name"]), ref.get("weight", 1)) for ref in usable
    )
    missing = sum(ref.get("weight", 1) for ref in weighted if not any(ref is u for u in usable))
    if missing or not valid:
        valid += (WeightedBackend(invalid, missing or 1),)
    return valid


def build_routes(
    base: str, route: dict, index: int, existing, tenant: str, invalid: str
) -> list[DubboRoute]:
    """``base``: ``<tenant>/<gateway>/route/<route>``; ``index``: the route's age rank."""
    result = []
    for r, rule in enumerate(route["spec"].get("rules", [])):
        targets = backends(rule.get("backendRefs", []), existing, tenant, invalid)
        for m, match in enumerate(rule.get("matches", [])):
            result.append(
                DubboRoute(
                    name=f"{base}/rule/{r}/match/{m}",
                    service=match["service"],
                    method=match.get("method"),
                    group=match.get("group"),
                    version=match.get("version"),
                    attachments=tuple(
                        HeaderMatch(a["name"].lower(), a.get("type", "Exact"), a["value"])
                        for a in match.get("attachments", [])
                    ),
                    backends=targets,
                    order=(index, route["name"], r, m),
                )
            )
    return result


def precedence(route: DubboRoute) -> tuple:
    """A group and a version first, then a method, then more attachment matches; then the
    older route, its name, rule and match order."""
    return (route.group is None, route.version is None, route.method is None,
            -len(route.attachments), route.order)  # fmt: skip
