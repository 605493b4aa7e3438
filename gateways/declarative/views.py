"""``POST /api/v1/tenants/{t}/apply/`` and ``GET /api/v1/tenants/{t}/export/``. Thin: the body is
parsed here, everything else happens in ``gateways.declarative``."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from config.api.parsers import JSONParser, read_limited
from config.errors import ValidationFailed
from gateways.declarative.apply import apply
from gateways.declarative.documents import DocumentError, load_yaml
from gateways.declarative.export import export_yaml
from tenants.api_base import TenantScopedViewSet


class YamlText(str):
    """A YAML body, parsed by the view (so that its errors name lines, as a 400)."""


class YAMLParser(BaseParser):
    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        body = read_limited(stream).getvalue()
        try:
            return YamlText(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValidationFailed.one("", "the body is not UTF-8") from None


class ResultSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    gateway = serializers.CharField(required=False, help_text="routes and policies")
    action = serializers.CharField(help_text="created, configured, unchanged or pruned")
    diff = serializers.CharField(help_text="unified diff of the document, live → applied")


class ApplyAnswerSerializer(serializers.Serializer):
    dryRun = serializers.BooleanField()
    prune = serializers.BooleanField()
    results = ResultSerializer(many=True)
    summary = serializers.DictField(child=serializers.IntegerField())
    impact = serializers.DictField(
        required=False, child=serializers.JSONField(),
        help_text="dry runs only: gateway name → hot (routes, clusters, endpoints only) or the "
        "listeners it would drain, with the open connections they hold now (local runtime)",
    )  # fmt: skip


def _flag(request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ValidationFailed.one(name, "must be true or false")
    return value in ("true", "1")


class DeclarativeViewSet(TenantScopedViewSet):
    """A tenant's whole configuration as Gateway API / Envoy Gateway documents."""

    parser_classes = [YAMLParser, JSONParser]
    serializer_class = ApplyAnswerSerializer

    def resource_label(self) -> str:
        return "the tenant's configuration"

    @extend_schema(
        operation_id="tenants_apply",
        request={"application/yaml": OpenApiTypes.STR,
                 "application/json": {"type": "array", "items": {"type": "object"}}},
        parameters=[
            OpenApiParameter("dryRun", bool,
                             description="validate and show the diff; write nothing"),
            OpenApiParameter("prune", bool, description="delete objects of the applied kinds "
                             "that the file does not name"),
        ],
        responses={200: ApplyAnswerSerializer},
    )  # fmt: skip
    def apply(self, request, *args, **kwargs):
        dry_run, prune = _flag(request, "dryRun"), _flag(request, "prune")
        data = request.data
        if isinstance(data, YamlText):
            try:
                data = load_yaml(data)
            except DocumentError as error:
                raise ValidationFailed.one(error.path, error.message) from None
        impact: dict = {}
        results = apply(self.actor, self.tenant, data, dry_run=dry_run, prune=prune,
                        impact=impact)  # fmt: skip
        summary = {action: 0 for action in ("created", "configured", "unchanged", "pruned")}
        for result in results:
            summary[result.action] += 1
        body = {"dryRun": dry_run, "prune": prune, "summary": summary,
                "results": [result.as_json() for result in results]}  # fmt: skip
        if dry_run:
            body["impact"] = impact
        return Response(body)

    @extend_schema(
        operation_id="tenants_export",
        responses={(200, "application/yaml"): OpenApiResponse(OpenApiTypes.STR)},
    )
    def export(self, request, *args, **kwargs):
        return HttpResponse(export_yaml(self.tenant), content_type="application/yaml")
