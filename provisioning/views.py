"""REST API of a gateway's config revisions and operations timeline. Every member reads them;
editors roll back."""

import re
from functools import cached_property

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.errors import ValidationFailed
from gateways.models import Gateway
from provisioning import revisions, rollback
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.serializers import (
    OperationSerializer,
    RevisionDetailSerializer,
    RevisionDiffSerializer,
    RevisionSerializer,
)
from tenants.api_base import TenantScopedViewSet

AGAINST = OpenApiParameter(
    "against", int, OpenApiParameter.QUERY, required=False,
    description="the revision to compare with (default: the one before)",
)  # fmt: skip


class GatewayChildViewSet(TenantScopedViewSet):
    model: type

    @cached_property
    def gateway(self) -> Gateway:
        return get_object_or_404(Gateway, tenant=self.tenant, name=self.kwargs["gateway"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self.model.objects.filter(gateway=self.gateway)


class RevisionViewSet(GatewayChildViewSet, mixins.ListModelMixin):
    """Config revisions of a gateway, newest first: compiled Envoy config and Envoy's verdict."""

    model = ConfigRevision
    serializer_class = RevisionSerializer
    lookup_field = "number"
    lookup_url_kwarg = "number"
    lookup_value_regex = r"[0-9]{1,9}"
    ordering_aliases = {"number": "number", "createdAt": "created_at"}

    def get_queryset(self):
        # Compiled resources are loaded (and decrypted) only by the reads that show them.
        return (
            super()
            .get_queryset()
            .defer("resources", "desired_state", "manifest")
            .select_related("gateway")
            .prefetch_related("receipts")
            .order_by("-number")
        )

    def resource_label(self) -> str:
        return "revisions"

    def get_object(self):
        return get_object_or_404(self.get_queryset(), number=self.kwargs["number"])

    @extend_schema(responses=RevisionDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        return Response(RevisionDetailSerializer(self.get_object()).data)

    @extend_schema(parameters=[AGAINST], responses=RevisionDiffSerializer)
    @action(detail=True, methods=["get"])
    def diff(self, request, *args, **kwargs):
        """Unified diff of the compiled YAML from ``against`` to this revision."""
        revision = self.get_object()
        against = request.query_params.get("against")
        if against is None:
            against = revision.number - 1
        elif not re.fullmatch(r"[0-9]{1,9}", against):
            raise ValidationFailed.one("against", "must be a revision number (digits 0-9)")
        old = get_object_or_404(self.get_queryset(), number=int(against))
        body = {"fromRevision": old.number, "toRevision": revision.number,
                "diff": revisions.unified_diff(old, revision)}  # fmt: skip
        return Response(body)

    @extend_schema(request=None, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, *args, **kwargs):
        """Restore this (valid) revision's routing and policy with the current certificates and
        credentials, as a new revision. The next change of the desired state supersedes it."""
        operation = rollback.rollback(self.actor, self.gateway, self.get_object().number)
        return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)


class OperationViewSet(GatewayChildViewSet, mixins.ListModelMixin):
    """The gateway's operations timeline, newest first: what the platform did and how it went."""

    model = GatewayOperation
    serializer_class = OperationSerializer
    ordering_aliases = {"startedAt": "started_at"}

    def get_queryset(self):
        return (
            super()
            .get_queryset()
            .select_related("revision", "gateway")
            .defer("revision__resources", "revision__desired_state", "revision__manifest")
            .prefetch_related("revision__receipts")
            .order_by("-started_at", "-id")
        )

    def resource_label(self) -> str:
        return "operations"
