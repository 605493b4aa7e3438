"""REST API views for gateways, certificates, backends and routes. Thin: validation and writes
live in services. Every resource behaves the same way: name in the URL, ``spec`` and a read-only
``status``, PUT replaces, PATCH merges, ``If-Match`` or ``resourceVersion``, ETag."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from config.api.versioning import expected_version
from config.errors import ValidationFailed
from gateways import services
from gateways.filters import BackendFilter, CertificateFilter, GatewayFilter, RouteFilter
from gateways.models import Backend, Certificate, Gateway, Route
from gateways.resource_serializers import (
    BackendCreateDoc,
    BackendReplaceDoc,
    BackendSerializer,
    CertificateCreateDoc,
    CertificateReplaceDoc,
    CertificateSerializer,
    RouteCreateDoc,
    RouteReplaceDoc,
    RouteSerializer,
)
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


def with_etag(response: Response, obj) -> Response:
    response["ETag"] = f'"{obj.resource_version}"'
    return response


@dataclass(frozen=True)
class Writes:
    """The service functions behind a resource's writes."""

    create: Callable  # (actor, parent, name, spec)
    replace: Callable  # (actor, obj, spec, expected)
    patch: Callable  # (actor, obj, patch, expected)
    delete: Callable  # (actor, obj, expected)


def documented(serializer, create_doc, replace_doc):
    """The OpenAPI description of one resource's operations."""
    write = {
        "request": replace_doc,
        "responses": {200: serializer, 202: serializer},
        "parameters": [IF_MATCH],
    }
    return extend_schema_view(
        retrieve=extend_schema(responses=serializer),
        create=extend_schema(request=create_doc, responses={202: serializer}),
        update=extend_schema(**write),
        partial_update=extend_schema(**write),
        destroy=extend_schema(parameters=[IF_MATCH]),
    )


class SpecResourceViewSet(TenantScopedViewSet, mixins.ListModelMixin):
    """A spec/status resource inside a tenant. Editors manage it; every member reads it."""

    model: type
    writes: Writes
    lookup_field = "name"
    ordering_aliases = {"name": "name", "createdAt": "created_at", "updatedAt": "updated_at"}

    def scope(self) -> dict:
        """Filters selecting the objects this URL can see."""
        return {"tenant": self.tenant}

    def parent(self):
        """What a new object is created in."""
        return self.tenant

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self.model.objects.filter(**self.scope())

    def get_object(self):
        return get_object_or_404(self.get_queryset(), name=self.kwargs[self.lookup_url_kwarg])

    def respond(self, obj, code: int = status.HTTP_200_OK) -> Response:
        return with_etag(Response(self.serializer_class(obj).data, status=code), obj)

    def retrieve(self, request, *args, **kwargs):
        return self.respond(self.get_object())

    def create(self, request, *args, **kwargs):
        body = GatewayCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        obj = self.writes.create(self.actor, self.parent(), data["name"], data["spec"])
        # Accepted: stored, and the platform now works on it (status says how far it got).
        response = self.respond(obj, status.HTTP_202_ACCEPTED)
        response["Location"] = request.build_absolute_uri(f"{request.path}{obj.name}/")
        return response

    def update(self, request, *args, **kwargs):
        obj = self.get_object()
        partial = kwargs.get("partial", False)
        body = GatewayReplaceSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name")
        if name is not None and name != obj.name:
            raise ValidationFailed.one("name", "cannot be changed; it must match the URL")
        write = self.writes.patch if partial else self.writes.replace
        # A PATCH without a spec is an empty merge patch: it changes nothing (PUT requires one).
        spec = body.validated_data.get("spec", {})
        written = write(self.actor, obj, spec, expected_version(request))
        # A changed spec starts work (202); a write that changes nothing is answered 200.
        changed = written.generation != obj.generation
        return self.respond(written, status.HTTP_202_ACCEPTED if changed else status.HTTP_200_OK)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        self.writes.delete(self.actor, self.get_object(), expected_version(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented(GatewaySerializer, GatewayCreateDoc, GatewayReplaceDoc)
class GatewayViewSet(SpecResourceViewSet):
    """Gateway instances of a tenant. Editors manage them."""

    model = Gateway
    serializer_class = GatewaySerializer
    lookup_url_kwarg = "gateway"
    filterset_class = GatewayFilter
    writes = Writes(
        services.create_gateway,
        services.replace_gateway_spec,
        services.patch_gateway_spec,
        services.delete_gateway,
    )


@documented(CertificateSerializer, CertificateCreateDoc, CertificateReplaceDoc)
class CertificateViewSet(SpecResourceViewSet):
    """TLS certificates of a tenant: PEM chain and private key. The key is never returned."""

    model = Certificate
    serializer_class = CertificateSerializer
    lookup_url_kwarg = "certificate"
    filterset_class = CertificateFilter
    writes = Writes(
        services.create_certificate,
        services.replace_certificate,
        services.patch_certificate,
        services.delete_certificate,
    )


@documented(BackendSerializer, BackendCreateDoc, BackendReplaceDoc)
class BackendViewSet(SpecResourceViewSet):
    """Backends of a tenant: where routes send requests (IP or DNS endpoints)."""

    model = Backend
    serializer_class = BackendSerializer
    lookup_url_kwarg = "backend"
    filterset_class = BackendFilter
    writes = Writes(
        services.create_backend,
        services.replace_backend_spec,
        services.patch_backend_spec,
        services.delete_backend,
    )


@documented(RouteSerializer, RouteCreateDoc, RouteReplaceDoc)
class RouteViewSet(SpecResourceViewSet):
    """HTTP routes of a gateway (Gateway API HTTPRoute specs). A missing gateway is 404."""

    model = Route
    serializer_class = RouteSerializer
    lookup_url_kwarg = "route"
    filterset_class = RouteFilter
    writes = Writes(
        services.create_route,
        services.replace_route_spec,
        services.patch_route_spec,
        services.delete_route,
    )

    @cached_property
    def gateway(self) -> Gateway:
        return get_object_or_404(Gateway, tenant=self.tenant, name=self.kwargs["gateway"])

    def scope(self) -> dict:
        return {"gateway": self.gateway}

    def parent(self):
        return self.gateway

    def get_queryset(self):
        return super().get_queryset().select_related("gateway")
