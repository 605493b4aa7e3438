"""A route's status, computed from its spec and what exists around it (Gateway API semantics).

- ``Accepted``: the route attaches to at least one listener of its gateway — the listeners its
  ``parentRefs`` name, or every listener when it names none — that takes its kind
  (``gateways.route_kinds``: HTTP/HTTPS take HTTPRoutes and GRPCRoutes, TCP TCPRoutes, TLS
  TLSRoutes, Dubbo DubboRoutes) and whose hostname intersects the route's ``hostnames``.
  Otherwise False, reason ``NoMatchingParent`` (a named listener is gone),
  ``NotAllowedByListeners`` (the listeners it could attach to take other kinds) or
  ``NoMatchingListenerHostname``.
- ``ResolvedRefs``: every backend the route sends or mirrors requests to exists. Otherwise
  False, reason ``BackendNotFound``; requests for a missing backend are answered with 500.
  A backendRef of another kind than Envoy Gateway's ``Backend`` (a core ``Service``, say) is
  ``InvalidKind``, its share of requests answered with 500 too.
  A backend the egress policy refuses at translation (stored before the policy, or under a
  laxer one) is ``RefNotPermitted``, and answered with 500 as well.

Pure apart from the clock (``lastTransitionTime``): the services call it on every write that
can change the answer.
"""

from collections.abc import Collection, Mapping

from gateways.conditions import set_condition
from gateways.route_kinds import allows, kinds_for
from gateways.validation.routes import BACKEND_GROUP, invalid_kinds, referenced_backends

MAX_LISTED = 5


def route_status(
    spec: dict,
    existing_backend_names: Collection[str],
    listeners: list[dict],
    generation: int,
    previous_status: dict | None = None,
    refused: Mapping[str, str] | None = None,
    kind: str = "HTTPRoute",
) -> dict:
    """``refused``: backends the egress policy refuses (name → why), as translation found;
    ``kind``: the route's kind (None: HTTPRoute)."""
    conditions = (previous_status or {}).get("conditions", [])
    attached, accepted = _accepted(spec, listeners, kind)
    conditions = set_condition(conditions, "Accepted", *accepted, generation)
    resolved = _resolved_refs(spec, set(existing_backend_names), refused or {})
    conditions = set_condition(conditions, "ResolvedRefs", *resolved, generation)
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "attachedListeners": attached,
    }


def hostnames_intersect(listener_hostname: str | None, route_hostnames: list[str]) -> bool:
    """Whether a listener and a route share a hostname (no hostname on either side: any)."""
    if not listener_hostname or not route_hostnames:
        return True
    return any(_intersect(listener_hostname, hostname) for hostname in route_hostnames)


def _intersect(a: str, b: str) -> bool:
    if a == b:
        return True
    return (a.startswith("*.") and _within(b, a)) or (b.startswith("*.") and _within(a, b))


def _within(hostname: str, wildcard: str) -> bool:
    """``*.example.com`` covers ``a.example.com``, ``a.b.example.com`` and ``*.a.example.com``."""
    suffix = wildcard[1:]  # ".example.com"
    if hostname.startswith("*."):
        return hostname[1:].endswith(suffix)
    return hostname.endswith(suffix) and len(hostname) > len(suffix)


def _accepted(
    spec: dict, listeners: list[dict], kind: str
) -> tuple[list[str], tuple[str, str, str]]:
    by_name = {listener["name"]: listener for listener in listeners}
    refs = [ref["sectionName"] for ref in spec.get("parentRefs", [])]
    missing = [name for name in refs if name not in by_name]
    named = [by_name[name] for name in refs if name in by_name] if refs else listeners
    wrong = [listener for listener in named if not allows(listener, kind)]
    candidates = [listener for listener in named if allows(listener, kind)]
    hostnames = spec.get("hostnames", [])
    attached = [
        listener["name"]
        for listener in candidates
        if hostnames_intersect(listener.get("hostname"), hostnames)
    ]
    gone = f"; the gateway has no listener {_names(missing)}" if missing else ""
    refused = ""
    if refs and wrong:
        refused = "; " + _not_allowed(wrong, kind)
    if attached:
        why = f"attached to listener {_names(attached)}{gone}{refused}"
        return attached, ("True", "Accepted", why)
    if missing and not named:
        return [], ("False", "NoMatchingParent", f"the gateway has no listener {_names(missing)}")
    if not candidates:
        if refs:
            why = _not_allowed(wrong, kind) + gone
        else:
            why = f"the gateway has no listener that takes {kind}s"
        return [], ("False", "NotAllowedByListeners", why)
    return [], (
        "False",
        "NoMatchingListenerHostname",
        f"no listener's hostname intersects the route's hostnames ({', '.join(hostnames)})",
    )


def _resolved_refs(spec: dict, existing: set[str], refused: Mapping[str, str]):
    wrong = invalid_kinds(spec)
    if wrong:
        listed = "; ".join(
            f"{path}: {kind} is not a kind Gantry routes to (only {BACKEND_GROUP}/Backend)"
            for path, kind in wrong[:MAX_LISTED]
        )
        return "False", "InvalidKind", f"{listed}. Requests for it are answered with 500."
    refs = referenced_backends(spec)
    denied = [(path, name) for path, name in refs if name in existing and name in refused]
    if denied:
        listed = "; ".join(
            f"{path}: backend {name!r} is refused by the egress policy ({refused[name]})"
            for path, name in denied[:MAX_LISTED]
        )
        why = f"{listed}. Requests for it are answered with 500 until it is changed."
        return "False", "RefNotPermitted", why
    missing = [(path, name) for path, name in refs if name not in existing]
    if not missing:
        return "True", "ResolvedRefs", "every referenced backend exists"
    listed = "; ".join(
        f"{path}: backend {name!r} does not exist" for path, name in missing[:MAX_LISTED]
    )
    more = f"; and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    return (
        "False",
        "BackendNotFound",
        f"{listed}{more}. Requests for a missing backend are answered with 500.",
    )


def _not_allowed(listeners: list[dict], kind: str) -> str:
    return "; ".join(
        f"listener {listener['name']!r} (protocol {listener['protocol']}) takes "
        f"{' and '.join(kinds_for(listener['protocol'])) or 'no route'}, not {kind}"
        for listener in listeners
    )


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)
