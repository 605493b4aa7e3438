"""REST API of the Kubernetes clusters gateways run on: platform operators only (anyone else
gets 403). Thin: ``provisioning.cluster_services`` writes."""

from django.db.models import Count, Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.ordering import AliasOrderingFilter
from provisioning import cluster_services as services
from provisioning.cluster_serializers import (
    ClusterSerializer,
    ClusterUpdateSerializer,
    ConnectionTestSerializer,
)
from provisioning.models import KubernetesCluster
from tenants.audit import Actor
from tenants.models import Plan


class IsOperator(permissions.BasePermission):
    message = "only platform operators may see or change clusters"
    refuses_reads = True  # the schema documents a 403 on reads too

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_staff)


def clusters():
    return (
        KubernetesCluster.objects.annotate(gateway_count=Count("placements"))
        .prefetch_related(Prefetch("plans", queryset=Plan.objects.only("name")))
        .order_by("name")
    )


@extend_schema_view(
    update=extend_schema(request=ClusterUpdateSerializer, responses=ClusterSerializer),
    partial_update=extend_schema(request=ClusterUpdateSerializer, responses=ClusterSerializer),
)
class ClusterViewSet(viewsets.ModelViewSet):
    """Kubernetes clusters, their settings and the plans that may use them."""

    serializer_class = ClusterSerializer
    permission_classes = [permissions.IsAuthenticated, IsOperator]
    lookup_field = "name"
    filter_backends = [AliasOrderingFilter]
    ordering_aliases = {"name": "name", "createdAt": "created_at"}

    def get_queryset(self):
        return clusters()

    def create(self, request, *args, **kwargs):
        body = ClusterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cluster = services.register_cluster(Actor.from_request(request), dict(body.validated_data))
        return Response(ClusterSerializer(clusters().get(pk=cluster.pk)).data, status=201)

    def update(self, request, *args, **kwargs):
        cluster = self.get_object()
        body = ClusterUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.update_cluster(Actor.from_request(request), cluster, dict(body.validated_data))
        return Response(ClusterSerializer(clusters().get(pk=cluster.pk)).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_cluster(Actor.from_request(request), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ConnectionTestSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, *args, **kwargs):
        """Calls the cluster's API server with its stored credentials: ``ok``, a message and
        the latency. A failed test is a 200 with ``ok: false`` (the test itself worked)."""
        result = services.test_connection(Actor.from_request(request), self.get_object())
        return Response(ConnectionTestSerializer(result).data)
