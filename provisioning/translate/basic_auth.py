"""SecurityPolicy basicAuth → Envoy's basic_auth filter (htpasswd ``{SHA}`` users).

The filter (disabled by default) knows every user of the gateway's applied policies and
forwards the authenticated user — a consumer's name — in ``x-gantry-consumer``; a route under
a policy enables it with its own users. A policy none of whose consumers has a password lets
nobody in: its routes answer 401 directly.
"""

from provisioning.ir.policy_build import CONSUMER_HEADER
from provisioning.ir.types import GatewayIR, Route
from provisioning.translate.types import BASIC_AUTH, BASIC_AUTH_PER_ROUTE, per_route

FILTER = "envoy.filters.http.basic_auth"


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not ir.basic_auth_users or not any(route.basic_auth for route in routes):
        return None
    users = "\n".join(f"{user.username}:{user.password_hash}" for user in ir.basic_auth_users)
    config = {"@type": BASIC_AUTH, "users": {"inline_string": users},
              "forward_username_header": CONSUMER_HEADER}  # fmt: skip
    return {"name": FILTER, "disabled": True, "typed_config": config}


def route_config(route: Route, envoy: dict) -> None:
    auth = route.basic_auth
    if auth is None:
        return
    if not auth.users:
        for action in ("route", "redirect"):
            envoy.pop(action, None)
        envoy["direct_response"] = {"status": 401}
        envoy["response_headers_to_add"] = [
            {"header": {"key": "www-authenticate", "value": 'Basic realm="gantry"'},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        ]  # fmt: skip
        return
    users = "\n".join(f"{user.username}:{user.password_hash}" for user in auth.users)
    config = {"@type": BASIC_AUTH_PER_ROUTE, "users": {"inline_string": users}}
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)
    if auth.forward_header != CONSUMER_HEADER:
        envoy.setdefault("request_headers_to_add", []).append(
            {"header": {"key": auth.forward_header, "value": f"%REQ({CONSUMER_HEADER})%"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        )  # fmt: skip
