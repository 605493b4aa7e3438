"""REST API views for tenants, plans, members, tokens and the audit log. Thin: services write."""

from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.ordering import AliasOrderingFilter
from config.api.responses import secret_created
from config.api.versioning import expected_version
from config.errors import TenantSuspended
from tenants import services
from tenants.api_base import TenantScopedViewSet
from tenants.audit import Actor
from tenants.filters import AuditEventFilter, MemberFilter, TenantFilter, TokenFilter
from tenants.models import ApiToken, AuditEvent, Membership, Plan, Tenant
from tenants.roles import Role, at_least
from tenants.scoping import resolve, visible_tenants
from tenants.serializers import (
    AuditEventSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    MeSerializer,
    NewTokenSerializer,
    PlanSerializer,
    PlanUpdateSerializer,
    TenantCreateSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
    TokenSerializer,
)


class IsStaffOrReadOnly(permissions.BasePermission):
    message = "only platform operators may change plans"

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class PlanViewSet(viewsets.ModelViewSet):
    """Plans and their quotas. Everyone reads; platform operators write."""

    queryset = Plan.objects.all()
    serializer_class = PlanSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]
    lookup_field = "name"
    filter_backends = [AliasOrderingFilter]
    ordering_aliases = {"name": "name", "createdAt": "created_at"}

    def get_serializer_class(self):
        return (
            PlanUpdateSerializer if self.action in ("update", "partial_update") else PlanSerializer
        )

    def perform_create(self, serializer):
        serializer.instance = services.create_plan(
            Actor.from_request(self.request), dict(serializer.validated_data)
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_plan(
            Actor.from_request(self.request),
            serializer.instance,
            dict(serializer.validated_data),
            expected_version(self.request),
        )

    def perform_destroy(self, instance):
        services.delete_plan(Actor.from_request(self.request), instance)


@extend_schema_view(
    create=extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer}),
    update=extend_schema(request=TenantUpdateSerializer, responses=TenantSerializer),
    partial_update=extend_schema(request=TenantUpdateSerializer, responses=TenantSerializer),
)
class TenantViewSet(viewsets.ModelViewSet):
    """Tenants you are a member of (operators: all). Operators create them."""

    serializer_class = TenantSerializer
    lookup_field = "slug"
    lookup_url_kwarg = "tenant"
    filterset_class = TenantFilter
    filter_backends = [DjangoFilterBackend, AliasOrderingFilter]
    ordering_aliases = {"slug": "slug", "createdAt": "created_at", "displayName": "display_name"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Tenant.objects.none()
        return visible_tenants(
            self.request.user, getattr(self.request, "auth", None)
        ).prefetch_related(
            Prefetch("memberships", queryset=Membership.objects.filter(user=self.request.user))
        )

    def get_serializer_class(self):
        if self.action == "create":
            return TenantCreateSerializer
        if self.action in ("update", "partial_update"):
            return TenantUpdateSerializer
        return TenantSerializer

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request and self.request.user.is_authenticated:
            roles = dict(
                Membership.objects.filter(user=self.request.user).values_list("tenant_id", "role")
            )
            context["roles"] = roles
        return context

    def _access(self):
        slug = self.kwargs["tenant"]
        return resolve(self.request.user, slug, getattr(self.request, "auth", None))

    def create(self, request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("only platform operators may create tenants")
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = services.create_tenant(
            Actor.from_request(request),
            data["slug"],
            data["owner"],
            display_name=data.get("display_name", ""),
            plan=data.get("plan", ""),
        )
        body = TenantSerializer(tenant, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        access = self._access()
        if not at_least(access.role, Role.ADMIN):
            raise PermissionDenied("changing a tenant needs the admin role or above")
        if access.tenant.suspended and not request.user.is_staff:
            raise TenantSuspended(f"tenant {access.tenant.slug!r} is suspended and read-only")
        serializer = TenantUpdateSerializer(data=request.data, partial=kwargs.get("partial"))
        serializer.is_valid(raise_exception=True)
        changes = {k: v for k, v in serializer.validated_data.items() if k != "resourceVersion"}
        tenant = services.update_tenant(
            Actor.from_request(request), access.tenant, changes, expected_version(request)
        )
        return Response(TenantSerializer(tenant, context=self.get_serializer_context()).data)

    def destroy(self, request, *args, **kwargs):
        access = self._access()
        if not at_least(access.role, Role.OWNER):
            raise PermissionDenied("deleting a tenant needs the owner role")
        services.delete_tenant(Actor.from_request(request), access.tenant)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def retrieve(self, request, *args, **kwargs):
        tenant = self._access().tenant
        return Response(TenantSerializer(tenant, context=self.get_serializer_context()).data)


@extend_schema_view(
    update=extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer),
    partial_update=extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer),
)
class MemberViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """A tenant's members and their roles. Admins manage them."""

    serializer_class = MemberSerializer
    write_role = Role.ADMIN
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = "[^/]+"
    filterset_class = MemberFilter
    ordering_aliases = {"user": "user__username", "role": "role", "createdAt": "created_at"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return Membership.objects.filter(tenant=self.tenant).select_related("user")

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return MemberUpdateSerializer
        return MemberSerializer

    def create(self, request, *args, **kwargs):
        serializer = MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        membership = services.add_member(
            self.actor, self.role, self.tenant, data["user"]["username"], data["role"]
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        membership = self.get_object()
        serializer = MemberUpdateSerializer(data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data.get("role", membership.role)  # PATCH may omit it
        membership = services.change_member_role(self.actor, self.role, membership, role)
        return Response(MemberSerializer(membership).data)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        services.remove_member(self.actor, self.role, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """API tokens. Every member manages their own; admins also see and revoke everyone's."""

    serializer_class = TokenSerializer
    write_role = Role.VIEWER  # own tokens; revoking others' is checked below
    lookup_field = "prefix"
    filterset_class = TokenFilter
    ordering_aliases = {"createdAt": "created_at", "name": "name", "lastUsedAt": "last_used_at"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        tokens = ApiToken.objects.filter(tenant=self.tenant).select_related("user")
        if not at_least(self.role, Role.ADMIN):
            tokens = tokens.filter(user=self.request.user)
        return tokens

    @extend_schema(request=TokenSerializer, responses={201: NewTokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = TokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, plaintext = services.create_token(
            self.actor, self.tenant, data["name"], expires_at=data.get("expires_at")
        )
        return secret_created(dict(TokenSerializer(token).data, token=plaintext))

    def destroy(self, request, *args, **kwargs):
        services.revoke_token(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Every write in the tenant: who, what, before/after (secrets redacted). Admins read it."""

    serializer_class = AuditEventSerializer
    read_role = Role.ADMIN
    filterset_class = AuditEventFilter
    ordering_aliases = {"time": "created_at"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        return AuditEvent.objects.filter(tenant=self.tenant)

    def get_object(self):
        pk = self.kwargs["pk"]
        if not (pk.isascii() and pk.isdigit()):
            raise Http404  # event ids are integers: anything else names no event (not a 500)
        return get_object_or_404(self.get_queryset(), pk=pk)
