"""gRPC-JSON transcoding: a route to a backend with a ``grpcDescriptorSet`` lets REST clients
call its gRPC methods — by their ``google.api.http`` annotations, or ``POST /<service>/<method>``
with a JSON body — and get JSON back. Envoy's transcoder is on the listener, disabled, and
enabled by each such route with its backend's descriptors; it keeps the route the REST request
matched (``match_incoming_request_route``), so an HTTPRoute ``/v1/…`` to the backend works."""

from provisioning.ir.types import GatewayIR, Route
from provisioning.translate.types import per_route

FILTER = "envoy.filters.http.grpc_json_transcoder"
TRANSCODER = (
    "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"
)


def _config(route: Route) -> dict:
    spec = route.transcoder
    return {
        "@type": TRANSCODER,
        "proto_descriptor_bin": spec.descriptor_set,
        "services": list(spec.services),
        "auto_mapping": True,
        "match_incoming_request_route": True,
        "convert_grpc_status": True,
        "print_options": {"always_print_primitive_fields": True},
    }


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    first = next((route for route in routes if route.transcoder), None)
    if first is None:
        return None
    return {"name": FILTER, "disabled": True, "typed_config": _config(first)}


def route_config(route: Route, envoy: dict) -> None:
    if route.transcoder is None or "route" not in envoy:
        return
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(_config(route))
