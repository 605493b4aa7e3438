"""``gateways/{gateway}/replicas/``: the local runtime's Envoy processes of a gateway, and the
tail of each one's log. Every member reads them."""

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from config.errors import ValidationFailed
from provisioning.models import ConfigRevision, LocalReplica, ReplicaConnection, ReplicaStatus
from provisioning.runtimes.local.logs import tail
from provisioning.serializers import ReplicaSerializer
from provisioning.views import GatewayChildViewSet

TAIL = OpenApiParameter(
    "tail", int, OpenApiParameter.QUERY, required=False,
    description="how many of the last lines (default 200, at most 5000)",
)  # fmt: skip
MAX_LINES = 5000


class ReplicaViewSet(GatewayChildViewSet, mixins.ListModelMixin):
    """The gateway's replicas: state, restarts, xDS connection and the revision each runs."""

    model = LocalReplica
    serializer_class = ReplicaSerializer
    lookup_field = "index"
    lookup_value_regex = r"[0-9]+"
    ordering_aliases = {"index": "index"}

    def get_queryset(self):
        return super().get_queryset().order_by("index")

    def resource_label(self) -> str:
        return "replicas"

    def _annotate(self, replicas):
        key = f"{self.tenant.slug}/{self.gateway.name}"
        connected = set(
            ReplicaConnection.objects.filter(gateway=self.gateway, connected=True).values_list(
                "node_id", flat=True
            )
        )
        numbers = dict(
            ConfigRevision.objects.filter(gateway=self.gateway).values_list(
                "content_hash", "number"
            )
        )
        acked: dict[str, set[str]] = {}
        for node_id, version in ReplicaStatus.objects.filter(gateway=self.gateway).values_list(
            "node_id", "acked_version"
        ):
            acked.setdefault(node_id, set()).add(version)
        for replica in replicas:
            replica.node = f"{key}/{replica.index}"
            replica.connected = replica.node in connected
            versions = acked.get(replica.node, set())
            replica.revision = numbers.get(next(iter(versions))) if len(versions) == 1 else None
        return replicas

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            self.get_serializer(self._annotate(page), many=True).data
        )

    def get_object(self):
        replica = self.get_queryset().filter(index=self.kwargs["index"]).first()
        if replica is None:
            raise Http404
        return replica

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(self._annotate([self.get_object()])[0]).data)

    @extend_schema(parameters=[TAIL], responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def log(self, request, *args, **kwargs):
        """The last lines of the replica's Envoy log (plain text)."""
        raw = request.query_params.get("tail", "200")
        # isdigit() alone admits "²" and other digits int() refuses.
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LINES:
            raise ValidationFailed.one("tail", f"must be a whole number from 1 to {MAX_LINES}")
        replica = self.get_object()
        text = tail(replica.log_path, int(raw)) if replica.log_path else ""
        return HttpResponse(text, content_type="text/plain; charset=utf-8")
