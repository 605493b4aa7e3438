"""REST API views for gateways. Thin: validation and writes live in services."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from config.api.versioning import expected_version
from config.errors import ValidationFailed
from gateways import services
from gateways.filters import GatewayFilter
from gateways.models import Gateway
from gateways.serializers import (
    GatewayCreateDoc,
    GatewayCreateSerializer,
    GatewayReplaceDoc,
    GatewayReplaceSerializer,
    GatewaySerializer,
)
from tenants.api_base import TenantScopedViewSet

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="resourceVersion the change is based on; a stale one answers 409",
)


def with_etag(response: Response, gateway: Gateway) -> Response:
    response["ETag"] = f'"{gateway.resource_version}"'
    return response


class GatewayViewSet(TenantScopedViewSet, mixins.ListModelMixin):
    """Gateway instances of a tenant. Editors manage them."""

    serializer_class = GatewaySerializer
    lookup_field = "name"
    lookup_url_kwarg = "gateway"
    filterset_class = GatewayFilter
    ordering_aliases = {"name": "name", "createdAt": "created_at", "updatedAt": "updated_at"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Gateway.objects.none()
        return Gateway.objects.filter(tenant=self.tenant)

    def get_object(self):
        return get_object_or_404(self.get_queryset(), name=self.kwargs["gateway"])

    def retrieve(self, request, *args, **kwargs):
        gateway = self.get_object()
        return with_etag(Response(GatewaySerializer(gateway).data), gateway)

    @extend_schema(request=GatewayCreateDoc, responses={201: GatewaySerializer})
    def create(self, request, *args, **kwargs):
        body = GatewayCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        gateway = services.create_gateway(
            self.actor, self.tenant, body.validated_data["name"], body.validated_data["spec"]
        )
        response = Response(GatewaySerializer(gateway).data, status=status.HTTP_201_CREATED)
        return with_etag(response, gateway)

    @extend_schema(request=GatewayReplaceDoc, responses=GatewaySerializer, parameters=[IF_MATCH])
    def update(self, request, *args, **kwargs):
        gateway = self.get_object()
        partial = kwargs.get("partial", False)
        body = GatewayReplaceSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name")
        if name is not None and name != gateway.name:
            raise ValidationFailed.one("name", "cannot be changed; it must match the URL")
        write = services.patch_gateway_spec if partial else services.replace_gateway_spec
        # A PATCH without a spec is an empty merge patch: it changes nothing (PUT requires one).
        spec = body.validated_data.get("spec", {})
        gateway = write(self.actor, gateway, spec, expected_version(request))
        return with_etag(Response(GatewaySerializer(gateway).data), gateway)

    @extend_schema(request=GatewayReplaceDoc, responses=GatewaySerializer, parameters=[IF_MATCH])
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @extend_schema(parameters=[IF_MATCH])
    def destroy(self, request, *args, **kwargs):
        services.delete_gateway(self.actor, self.get_object(), expected_version(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
