"""Validation of GRPCRoute specs: a Gateway API ``GRPCRoute`` spec, same field names and semantics.

``parentRefs``, ``hostnames``, header matches, backendRefs, header modifiers and mirrors are
HTTPRoute's (same limits, same messages); what differs is the match (a gRPC service and method
instead of a path) and the filters allowed (no redirect or rewrite, as Gateway API says).
"""

import re

from rest_framework import serializers

from gateways.validation.common import run_spec_serializer
from gateways.validation.route_filters import FilterSerializer
from gateways.validation.routes import (
    BackendRefSerializer,
    HeaderMatchSerializer,
    RouteSpecSerializer,
    _check_size,
    _duplicates,
    regex_problem,
)
from provisioning.ir.grpc import path_match
from tenants.serializers import StrictSerializer, dns_label_field

METHOD_MATCH_TYPES = ["Exact", "RegularExpression"]
# Gateway API's patterns for Exact matches: a protobuf full name and a method name.
SERVICE = re.compile(r"\.?[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*")
METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
GRPC_FILTERS = ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"]


class GRPCMethodMatchSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=METHOD_MATCH_TYPES, default="Exact")
    service = serializers.CharField(
        trim_whitespace=False, max_length=1024, required=False,
        help_text="a protobuf full name (package.Service); omitted: every service",
    )  # fmt: skip
    method = serializers.CharField(
        trim_whitespace=False, max_length=1024, required=False,
        help_text="a method name; omitted: every method of the service",
    )  # fmt: skip

    def validate(self, data):
        if "service" not in data and "method" not in data:
            raise serializers.ValidationError(
                {"service": ["service or method is required (omit method to match every call)"]}
            )
        errors = {}
        for field, pattern, what in (
            ("service", SERVICE, "a protobuf full name such as helloworld.Greeter"),
            ("method", METHOD, "a method name such as SayHello"),
        ):
            value = data.get(field)
            if value is None:
                continue
            if data["type"] == "Exact" and not pattern.fullmatch(value):
                errors[field] = [f"must be {what}"]
            elif data["type"] == "RegularExpression":
                problem = regex_problem(value)
                if problem:
                    errors[field] = [problem]
        if errors:
            raise serializers.ValidationError(errors)
        # What Envoy gets is one regex over the path: it must fit Envoy's RE2 limit as a whole.
        path = path_match(data)
        problem = regex_problem(path["value"]) if path["type"] == "RegularExpression" else None
        if problem:
            field = "method" if data.get("method") else "service"
            raise serializers.ValidationError(
                {field: [f"the path pattern it makes ({path['value']}) {problem}"]}
            )
        return data


class GRPCMatchSerializer(StrictSerializer):
    method = GRPCMethodMatchSerializer(required=False)
    headers = HeaderMatchSerializer(many=True, required=False, max_length=16)

    def validate_headers(self, headers):
        errors = _duplicates([header["name"].lower() for header in headers], "headers")
        if errors:
            raise serializers.ValidationError(errors)
        return headers


class GRPCFilterSerializer(FilterSerializer):
    type = serializers.ChoiceField(choices=GRPC_FILTERS)
    requestRedirect = None
    urlRewrite = None


class GRPCRuleSerializer(StrictSerializer):
    name = dns_label_field(required=False)
    matches = GRPCMatchSerializer(many=True, max_length=64, default=list)
    filters = GRPCFilterSerializer(many=True, required=False, max_length=16)
    backendRefs = BackendRefSerializer(many=True, required=False, max_length=16)

    def validate_matches(self, matches):
        return matches or [{}]  # no matches: every call, as Gateway API says

    def validate(self, data):
        filters = data.get("filters", [])
        errors: list[dict] = [{} for _ in filters]
        first: dict[str, int] = {}
        for index, item in enumerate(filters):
            kind = item["type"]
            if kind != "RequestMirror" and kind in first:
                errors[index]["type"] = [
                    f"{kind} cannot be repeated (filters[{first[kind]}] is one)"
                ]
            first.setdefault(kind, index)
        if any(errors):
            raise serializers.ValidationError({"filters": errors})
        return data


def _default_rules() -> list[dict]:
    return [{"matches": [{}]}]


class GRPCRouteSpecSerializer(RouteSpecSerializer):
    rules = GRPCRuleSerializer(many=True, allow_empty=False, max_length=16, default=_default_rules)


def validate_grpc_route_spec(raw, listeners: list[str] | None = None) -> dict:
    """The spec with Gateway API's defaults filled in, or ValidationFailed naming each bad field."""
    _check_size(raw)
    spec = run_spec_serializer(GRPCRouteSpecSerializer, raw, {"listeners": listeners})
    _check_size(spec)
    return spec
