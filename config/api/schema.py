"""The OpenAPI schema documents the error envelope (``config.api.errors``) on every operation.

drf-spectacular documents only the success response of each operation. ``GantryAutoSchema``
adds the errors an operation can answer, each with the ``ErrorEnvelope`` body:

- 401 and 429 everywhere: a bad token is refused and every credential is throttled even where
  no login is needed;
- 403 on writes (roles, suspended tenants, quotas, operators-only actions) and on reads of
  tenant-scoped resources (a role may be too low to read them);
- 404 on paths with parameters (what they name may not exist or not be visible) and on
  paginated lists (a page past the end);
- 400 where the caller sends something to validate: a body, filters, an ``If-Match`` header;
- 409 on writes (duplicates, stale ``resourceVersion``, objects still in use);
- 413 and 415 where there is a body (at most ``GANTRY_MAX_REQUEST_BYTES``; only JSON and JSON
  merge patch are accepted).

An explicit ``extend_schema(responses={...})`` for one of these codes wins.

It also documents two rules the API enforces that drf-spectacular leaves out: request bodies
of strict serializers (``tenants.serializers.StrictSerializer``) are ``additionalProperties:
false`` (an unknown field is a 400), and nested lists (``many=True``) carry their
``allow_empty``/``min_length``/``max_length`` as ``minItems``/``maxItems``.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from rest_framework import permissions, serializers

# Query parameters that never cause a 400 (unknown ordering fields and bad sizes are ignored).
_LENIENT_QUERY = {"page", "page_size", "ordering"}

_DESCRIPTIONS = {
    "400": "The request is invalid; `fields` names each offending value.",
    "401": "No valid credentials (missing, unknown, revoked or expired token).",
    "403": "The caller's role, the tenant's state or its plan does not allow this.",
    "404": "No such object, or not visible to the caller.",
    "409": "Conflicts with the current state (duplicate, stale resourceVersion, still in use).",
    "413": "The body is larger than the API accepts; `limit` says how many bytes it takes.",
    "415": "The body is not JSON (`application/json` or `application/merge-patch+json`).",
    "429": "Too many requests for this credential; retry after `Retry-After` seconds.",
}
_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "The authentication scheme to use: `Bearer`.",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds until the credential's window resets.",
        }
    },
}


class ErrorFieldSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="JSON path of the offending value; empty for the body")
    message = serializers.CharField()
    code = serializers.CharField()


class QuotaSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="the quota, e.g. `maxGateways`")
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    requested = serializers.IntegerField()
    plan = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="the HTTP status, repeated")
    code = serializers.CharField(help_text="stable machine code, e.g. `invalid`, `not_found`")
    message = serializers.CharField()
    fields = ErrorFieldSerializer(many=True, required=False)
    quota = QuotaSerializer(required=False, help_text="with `quota_exceeded`")
    limit = serializers.IntegerField(
        required=False, help_text="with `payload_too_large`: the most bytes a body may have"
    )
    requestId = serializers.CharField(required=False, help_text="quote it when reporting")


class ErrorEnvelopeSerializer(serializers.Serializer):
    """Every API error: ``{"error": {...}}``."""

    error = ErrorSerializer()


class GantryAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        envelope = self.resolve_serializer(ErrorEnvelopeSerializer, "response").ref
        for status in self._error_statuses(operation):
            if status in responses:
                continue
            response = {
                "description": _DESCRIPTIONS[status],
                "content": {"application/json": {"schema": envelope}},
            }
            if status in _HEADERS:
                response["headers"] = _HEADERS[status]
            responses[status] = response
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        from tenants.serializers import StrictSerializer

        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        strict = isinstance(force_instance(serializer), StrictSerializer)
        if direction == "request" and strict and schema.get("type") == "object":
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.ListSerializer) and schema.get("type") == "array":
            least = field.min_length or (0 if field.allow_empty else 1)
            if least:
                schema["minItems"] = least
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _error_statuses(self, operation: dict) -> list[str]:
        writing = self.method not in permissions.SAFE_METHODS
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        open_to_all = all(isinstance(p, permissions.AllowAny) for p in self.view.get_permissions())
        statuses = ["401", "429"]
        refuses_reads = hasattr(self.view, "read_role") or any(
            getattr(p, "refuses_reads", False) for p in self.view.get_permissions()
        )  # a role too low to read, or an operators-only resource
        if not open_to_all and (writing or refuses_reads):
            statuses.append("403")
        if any(p["in"] == "path" for p in parameters) or any(
            p["in"] == "query" and p["name"] == "page" for p in parameters
        ):
            statuses.append("404")
        if has_body or any(
            p["in"] == "header" or (p["in"] == "query" and p["name"] not in _LENIENT_QUERY)
            for p in parameters
        ):
            statuses.append("400")
        if writing and not open_to_all:
            statuses.append("409")
        if has_body:
            statuses += ["413", "415"]
        return statuses
