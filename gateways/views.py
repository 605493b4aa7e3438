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

from config.api.responses import secret_created
from config.api.versioning import expected_version
from config.errors import ValidationFailed
from gateways import services
from gateways.filters import (
    BackendFilter,
    CertificateFilter,
    ConsumerFilter,
    CredentialFilter,
    GatewayFilter,
    PolicyFilter,
    RouteFilter,
)
from gateways.models import Backend, Certificate, Consumer, Credential, Gateway, Policy, Route
from gateways.resource_serializers import (
    BackendCreateDoc,
    BackendReplaceDoc,
    BackendSerializer,
    CertificateCreateDoc,
    CertificateReplaceDoc,
    CertificateSerializer,
    ConsumerCreateDoc,
    ConsumerReplaceDoc,
    ConsumerSerializer,
    CredentialOutSerializer,
    DubboRouteCreateDoc,
    DubboRouteReplaceDoc,
    DubboRouteSerializer,
    GRPCRouteCreateDoc,
    GRPCRouteReplaceDoc,
    GRPCRouteSerializer,
    NewCredentialSerializer,
    PolicyCreateDoc,
    PolicyCreateSerializer,
    PolicyReplaceDoc,
    PolicyReplaceSerializer,
    PolicySerializer,
    RouteCreateDoc,
    RouteReplaceDoc,
    RouteSerializer,
    TCPRouteCreateDoc,
    TCPRouteReplaceDoc,
    TCPRouteSerializer,
    TLSRouteCreateDoc,
    TLSRouteReplaceDoc,
    TLSRouteSerializer,
)
from gateways.serializers import (
    GatewayCreateDoc,
    GatewayCreateSerializer,
    GatewayReplaceDoc,
    GatewayReplaceSerializer,
    GatewaySerializer,
)
from gateways.validation import CredentialSerializer
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
        return self.accepted(request, obj)

    def accepted(self, request, obj) -> Response:
        """Created: stored, and the platform now works on it (status says how far it got)."""
        response = self.respond(obj, status.HTTP_202_ACCEPTED)
        response["Location"] = request.build_absolute_uri(f"{request.path}{obj.name}/")
        return response

    def written(self, before, after) -> Response:
        """A changed spec starts work (202); a write that changes nothing is answered 200."""
        changed = after.generation != before.generation
        return self.respond(after, status.HTTP_202_ACCEPTED if changed else status.HTTP_200_OK)

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
        return self.written(obj, write(self.actor, obj, spec, expected_version(request)))

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

    route_kind = Route.Kind.HTTP

    def scope(self) -> dict:
        if self.model is Route:  # HTTPRoutes and GRPCRoutes have their own URLs
            return {"gateway": self.gateway, "kind": self.route_kind}
        return {"gateway": self.gateway}

    def parent(self):
        return self.gateway

    def get_queryset(self):
        return super().get_queryset().select_related("gateway")


@documented(GRPCRouteSerializer, GRPCRouteCreateDoc, GRPCRouteReplaceDoc)
class GRPCRouteViewSet(RouteViewSet):
    """gRPC routes of a gateway (Gateway API GRPCRoute specs). A missing gateway is 404.

    Names are shared with the gateway's HTTPRoutes: a name taken by either kind is a 409."""

    serializer_class = GRPCRouteSerializer
    lookup_url_kwarg = "grpcroute"
    route_kind = Route.Kind.GRPC
    writes = Writes(
        services.create_grpc_route,
        services.replace_route_spec,
        services.patch_route_spec,
        services.delete_route,
    )


@documented(TCPRouteSerializer, TCPRouteCreateDoc, TCPRouteReplaceDoc)
class TCPRouteViewSet(RouteViewSet):
    """TCP routes of a gateway (Gateway API TCPRoute specs): the connections of TCP listeners.
    A missing gateway is 404. Names are shared with the gateway's other routes."""

    serializer_class = TCPRouteSerializer
    lookup_url_kwarg = "tcproute"
    route_kind = Route.Kind.TCP
    writes = Writes(
        services.create_tcp_route,
        services.replace_route_spec,
        services.patch_route_spec,
        services.delete_route,
    )


@documented(TLSRouteSerializer, TLSRouteCreateDoc, TLSRouteReplaceDoc)
class TLSRouteViewSet(RouteViewSet):
    """TLS routes of a gateway (Gateway API TLSRoute specs): TLS connections passed through by
    SNI. A missing gateway is 404. Names are shared with the gateway's other routes."""

    serializer_class = TLSRouteSerializer
    lookup_url_kwarg = "tlsroute"
    route_kind = Route.Kind.TLS
    writes = Writes(
        services.create_tls_route,
        services.replace_route_spec,
        services.patch_route_spec,
        services.delete_route,
    )


@documented(DubboRouteSerializer, DubboRouteCreateDoc, DubboRouteReplaceDoc)
class DubboRouteViewSet(RouteViewSet):
    """Dubbo routes of a gateway (a Gantry kind, docs/dubbo.md): Dubbo calls on its Dubbo
    listeners, by interface, method, group, version and attachments, to weighted backends.

    Names are shared with the gateway's HTTPRoutes and GRPCRoutes: a name taken is a 409."""

    serializer_class = DubboRouteSerializer
    lookup_url_kwarg = "dubboroute"
    route_kind = Route.Kind.DUBBO
    writes = Writes(
        services.create_dubbo_route,
        services.replace_route_spec,
        services.patch_route_spec,
        services.delete_route,
    )


@documented(ConsumerSerializer, ConsumerCreateDoc, ConsumerReplaceDoc)
class ConsumerViewSet(SpecResourceViewSet):
    """API clients of a tenant, which SecurityPolicies allow by name."""

    model = Consumer
    serializer_class = ConsumerSerializer
    lookup_url_kwarg = "consumer"
    filterset_class = ConsumerFilter
    writes = Writes(
        services.create_consumer,
        services.replace_consumer_spec,
        services.patch_consumer_spec,
        services.delete_consumer,
    )


class CredentialViewSet(TenantScopedViewSet, mixins.ListModelMixin):
    """Credentials of a consumer: API keys (generated, shown once) and a basic-auth password.
    Neither is ever returned after creation. A missing consumer is 404."""

    serializer_class = CredentialOutSerializer
    lookup_field = "key_id"
    lookup_url_kwarg = "credential"
    filterset_class = CredentialFilter
    ordering_aliases = {"createdAt": "created_at"}

    @cached_property
    def consumer(self) -> Consumer:
        return get_object_or_404(Consumer, tenant=self.tenant, name=self.kwargs["consumer"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Credential.objects.none()
        return Credential.objects.filter(consumer=self.consumer)

    def get_object(self):
        return get_object_or_404(self.get_queryset(), key_id=self.kwargs["credential"])

    def retrieve(self, request, *args, **kwargs):
        return Response(self.serializer_class(self.get_object()).data)

    @extend_schema(request=CredentialSerializer, responses={201: NewCredentialSerializer})
    def create(self, request, *args, **kwargs):
        credential, key = services.create_credential(self.actor, self.consumer, request.data)
        return secret_created(dict(self.serializer_class(credential).data, key=key))

    def destroy(self, request, *args, **kwargs):
        services.delete_credential(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented(PolicySerializer, PolicyCreateDoc, PolicyReplaceDoc)
class PolicyViewSet(RouteViewSet):
    """Policies of a gateway: Envoy Gateway's SecurityPolicy, BackendTrafficPolicy and
    ClientTrafficPolicy. Writes carry a ``kind`` beside the spec, so they call the policy
    services directly."""

    model = Policy
    writes = None  # type: ignore[assignment]
    serializer_class = PolicySerializer
    lookup_url_kwarg = "policy"
    filterset_class = PolicyFilter

    def resource_label(self) -> str:
        return "policies"

    def create(self, request, *args, **kwargs):
        body = PolicyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        policy = services.create_policy(
            self.actor, self.gateway, data["name"], data["kind"], data["spec"]
        )
        return self.accepted(request, policy)

    def update(self, request, *args, **kwargs):
        policy = self.get_object()
        partial = kwargs.get("partial", False)
        body = PolicyReplaceSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data.get("name") is not None and data["name"] != policy.name:
            raise ValidationFailed.one("name", "cannot be changed; it must match the URL")
        write = services.patch_policy_spec if partial else services.replace_policy_spec
        written = write(self.actor, policy, data.get("spec", {}), expected_version(request),
                        kind=data.get("kind"))  # fmt: skip
        return self.written(policy, written)

    def destroy(self, request, *args, **kwargs):
        services.delete_policy(self.actor, self.get_object(), expected_version(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
