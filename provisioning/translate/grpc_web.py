"""gRPC-Web for browser clients: on a listener with GRPCRoutes, Envoy's grpc_web filter turns a
gRPC-Web request (HTTP/1.1 or HTTP/2, ``application/grpc-web*``) into a gRPC call to the backend
and the answer back into gRPC-Web (trailers in the body). Other requests pass through unchanged."""

from provisioning.ir.grpc import UNIMPLEMENTED_SUFFIX
from provisioning.ir.types import GatewayIR, Route

FILTER = "envoy.filters.http.grpc_web"
GRPC_WEB = "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.name.endswith(UNIMPLEMENTED_SUFFIX) for route in routes):
        return None  # no GRPCRoute on this port
    return {"name": FILTER, "typed_config": {"@type": GRPC_WEB}}
