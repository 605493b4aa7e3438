"""Validation of SecurityPolicy ``extAuth``: Envoy Gateway's field names and defaults, for an
HTTP authorization service that is one of the tenant's backends.

- ``http.backendRefs``: one backend (Envoy Gateway's BackendRef; ``kind: Backend``), named
  as a route's backendRefs name it. A backend that does not exist is not an error here: the
  policy's status says so and its targets fail closed.
- ``http.path``: a prefix of the path sent to the authorization service (the request's own
  path is appended); ``http.headersToBackend``: headers of the service's OK answer copied to
  the upstream request.
- ``headersToExtAuth``: request headers sent to the service besides Envoy's fixed set;
  ``timeout`` (default 10s); ``failOpen`` (default false: refused when the service fails).

- ``grpc.backendRefs``: instead of ``http``, one backend speaking Envoy's gRPC authorization
  API (``envoy.service.auth.v3.Authorization/Check``) over HTTP/2 (``appProtocol: gRPC``).

Envoy Gateway's ``bodyToExtAuth`` and ``recomputeRoute``, and the single ``backendRef`` and
``backendSettings`` of its services, are refused by name.
"""

import re

from rest_framework import serializers

from gateways.validation.backend_traffic import duration_field
from gateways.validation.common import (
    LaterFieldsSerializer,
    header_name_field,
    pattern_field,
    port_field,
)
from tenants.serializers import StrictSerializer, dns_label_field

EXT_AUTH_LATER = ["bodyToExtAuth", "recomputeRoute", "contextExtensions"]
HTTP_LATER = ["backendRef", "backendSettings"]
MAX_HEADERS = 64
# An absolute path of RFC 3986 path characters (no query or fragment).
AUTH_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]{0,1023}")
RESERVED_HEADERS = {"x-gantry-consumer"}


def _headers_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=header_name_field(), required=False,
                                 max_length=MAX_HEADERS, **kwargs)  # fmt: skip


def _unique_headers(names: list[str]) -> list[str]:
    lowered = [name.lower() for name in names]
    errors = {
        index: [f"duplicates [{lowered.index(name)}] (header names ignore case)"]
        for index, name in enumerate(lowered)
        if name in lowered[:index]
    }
    if errors:
        raise serializers.ValidationError(errors)
    return names


class ExtAuthBackendRefSerializer(StrictSerializer):
    group = serializers.ChoiceField(choices=["gateway.envoyproxy.io"], required=False)
    kind = serializers.ChoiceField(choices=["Backend"], default="Backend")
    name = dns_label_field(help_text="a backend of the tenant; a missing one answers 500")
    port = port_field(
        required=False, help_text="accepted for Gateway API compatibility; endpoints carry ports"
    )


class HTTPExtAuthSerializer(LaterFieldsSerializer):
    later = HTTP_LATER
    backendRefs = ExtAuthBackendRefSerializer(
        many=True, allow_empty=False, max_length=1,
        help_text="the authorization service: one backend of the tenant",
    )  # fmt: skip
    path = pattern_field(
        AUTH_PATH, "must be an absolute path such as /auth (no query or fragment)",
        required=False, max_length=1024,
        help_text="prefix of the path sent to the service; the request's path is appended",
    )  # fmt: skip
    headersToBackend = _headers_field(
        help_text="headers of the service's OK answer copied to the upstream request"
    )

    def validate_path(self, value):
        if value.endswith("/"):
            raise serializers.ValidationError(
                "must not end with '/': the request's path, which starts with '/', is appended"
            )
        return value

    def validate_headersToBackend(self, names):
        errors = {
            index: [f"{name.lower()} is reserved: it carries the consumer Gantry authenticated"]
            for index, name in enumerate(names)
            if name.lower() in RESERVED_HEADERS
        }
        if errors:
            raise serializers.ValidationError(errors)
        return _unique_headers(names)


class GRPCExtAuthSerializer(LaterFieldsSerializer):
    later = HTTP_LATER
    backendRefs = ExtAuthBackendRefSerializer(
        many=True, allow_empty=False, max_length=1,
        help_text="the gRPC authorization service: one backend of the tenant (appProtocol gRPC)",
    )  # fmt: skip


class ExtAuthSerializer(LaterFieldsSerializer):
    later = EXT_AUTH_LATER
    http = HTTPExtAuthSerializer(required=False)
    grpc = GRPCExtAuthSerializer(required=False)
    headersToExtAuth = _headers_field(
        help_text="request headers sent to the service besides Envoy's fixed set"
    )
    timeout = duration_field(1, required=False, help_text="default 10s")
    failOpen = serializers.BooleanField(
        default=False, help_text="let requests through when the service fails (default false)"
    )

    def validate_headersToExtAuth(self, names):
        return _unique_headers(names)

    def validate(self, data):
        if "http" not in data and "grpc" not in data:
            raise serializers.ValidationError({"http": ["http or grpc is required"]})
        if "http" in data and "grpc" in data:
            raise serializers.ValidationError({"grpc": ["only one of http and grpc"]})
        return data
