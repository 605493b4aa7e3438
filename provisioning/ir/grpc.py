"""GRPCRoute → the HTTPRoute rules Envoy routes by.

A gRPC call is an HTTP/2 POST to ``/<package.Service>/<Method>``, so a GRPCRoute's method match
becomes a path match (Gateway API's mapping): service and method → the exact path; service
only → the ``/<service>/`` segment prefix; method only, or regular expressions → a path regex.
Headers, filters and backendRefs keep HTTPRoute's shape and meaning.
"""

import base64
import functools

from google.protobuf import descriptor_pb2

from provisioning.ir.types import (
    UNIMPLEMENTED_SUFFIX,
    DirectResponse,
    GrpcTranscoder,
    HeaderMatch,
    HeaderOps,
    PathMatch,
    Route,
)

GRPC = "GRPCRoute"
# Requests a gRPC client (or a gRPC-Web one) sends: application/grpc, application/grpc+proto,
# application/grpc-web, application/grpc-web-text+proto …
GRPC_CONTENT_TYPE = r"application/grpc([+;-].*)?"
UNIMPLEMENTED = "12"
_ANY_SEGMENT = "[^/]+"


def is_grpc(route: dict) -> bool:
    return route.get("kind") == GRPC


def path_match(method: dict | None) -> dict:
    """The HTTPRoute path match of a GRPCRoute method match."""
    if not method:
        return {"type": "PathPrefix", "value": "/"}
    service, name = method.get("service"), method.get("method")
    if method.get("type", "Exact") == "RegularExpression":
        return {
            "type": "RegularExpression",
            "value": f"/({service or _ANY_SEGMENT})/({name or _ANY_SEGMENT})",
        }
    if service and name:
        return {"type": "Exact", "value": f"/{service}/{name}"}
    if service:
        return {"type": "PathPrefix", "value": f"/{service}"}
    return {"type": "RegularExpression", "value": f"/{_ANY_SEGMENT}/{name}"}


def http_spec(spec: dict) -> dict:
    """The GRPCRoute spec as the HTTPRoute spec that routes the same calls."""
    rules = []
    for rule in spec.get("rules", [{}]):
        matches = [
            {"path": path_match(match.get("method")), "headers": match.get("headers", [])}
            for match in rule.get("matches") or [{}]
        ]
        rules.append({**rule, "matches": matches})
    return {**spec, "rules": rules}


def unimplemented_route(vhost_name: str) -> Route:
    """Last in a virtual host with GRPCRoutes: a gRPC call no rule matched is answered as gRPC
    does (HTTP 200, ``grpc-status: 12`` UNIMPLEMENTED), not with an HTTP 404 a gRPC client
    reports as a transport error. Other requests still get the 404."""
    return Route(
        name=vhost_name + UNIMPLEMENTED_SUFFIX,
        path=PathMatch("PathPrefix", "/"),
        headers=(HeaderMatch("content-type", "RegularExpression", GRPC_CONTENT_TYPE),),
        direct_response=DirectResponse(200),
        response_headers=HeaderOps(
            set=(
                ("content-type", "application/grpc"),
                ("grpc-status", UNIMPLEMENTED),
                ("grpc-message", "unknown service or method"),
            )
        ),
        order=((1 << 30),),
    )


def transcoder(descriptor_sets: list[str | None]) -> GrpcTranscoder | None:
    """Transcoding for a rule whose backends all carry the same descriptor set, else None."""
    if not descriptor_sets or descriptor_sets[0] is None or len(set(descriptor_sets)) != 1:
        return None
    return _transcoder(descriptor_sets[0])


@functools.lru_cache(maxsize=64)  # parsed once per descriptor set, not once per rule
def _transcoder(descriptor_set: str) -> GrpcTranscoder:
    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(descriptor_set))
    services = tuple(
        f"{file.package}.{service.name}" if file.package else service.name
        for file in files.file
        for service in file.service
    )
    return GrpcTranscoder(descriptor_set, services)
