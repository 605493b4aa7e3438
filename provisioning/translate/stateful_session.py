"""HTTPRoute sessionPersistence → Envoy's stateful session filter, configured per route.

The filter has no session state of its own (it does nothing); a rule with sessionPersistence
gives its routes a cookie- or header-based state. The first answer carries the session (a
cookie, or a response header) naming the endpoint that served it; a request that brings it back
goes to that endpoint while it is healthy, and is balanced as usual otherwise (not strict).
"""

from provisioning.ir.types import GatewayIR, Route

FILTER = "envoy.filters.http.stateful_session"
_BASE = "type.googleapis.com/envoy.extensions"
STATEFUL_SESSION = f"{_BASE}.filters.http.stateful_session.v3.StatefulSession"
PER_ROUTE = f"{_BASE}.filters.http.stateful_session.v3.StatefulSessionPerRoute"
COOKIE_STATE = f"{_BASE}.http.stateful_session.cookie.v3.CookieBasedSessionState"
HEADER_STATE = f"{_BASE}.http.stateful_session.header.v3.HeaderBasedSessionState"


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.session for route in routes):
        return None
    return {"name": FILTER, "typed_config": {"@type": STATEFUL_SESSION}}


def route_config(route: Route, envoy: dict) -> None:
    session = route.session
    if session is None or "route" not in envoy:
        return
    if session.kind == "Header":
        state = {"name": "envoy.http.stateful_session.header",
                 "typed_config": {"@type": HEADER_STATE, "name": session.name}}  # fmt: skip
    else:
        cookie: dict = {"name": session.name, "path": "/"}
        if session.ttl_s is not None:
            cookie["ttl"] = f"{session.ttl_s}s"
        state = {"name": "envoy.http.stateful_session.cookie",
                 "typed_config": {"@type": COOKIE_STATE, "cookie": cookie}}  # fmt: skip
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = {
        "@type": PER_ROUTE, "stateful_session": {"session_state": state},
    }  # fmt: skip
