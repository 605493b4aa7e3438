"""Gateways with a route and a backend, built through the services as the API would."""

from gateways import services
from gateways.models import Gateway
from tenants.audit import Actor

ACTOR = Actor.system("tests")
BACKEND_SPEC = {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 8080}}]}


def route_spec(prefix: str = "/api") -> dict:
    return {
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
             "backendRefs": [{"name": "api"}]}
        ]
    }  # fmt: skip


def gateway_with_route(tenant, name: str = "edge") -> Gateway:
    gateway = services.create_gateway(ACTOR, tenant, name, {})
    services.create_backend(ACTOR, tenant, "api", BACKEND_SPEC)
    services.create_route(ACTOR, gateway, "api", route_spec())
    return gateway
