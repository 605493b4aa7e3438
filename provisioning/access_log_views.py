"""``GET /api/v1/tenants/{t}/gateways/{g}/access-logs/``: the requests a gateway answered,
newest first (every member reads them)."""

from rest_framework import mixins

from provisioning.access_log_filters import AccessLogFilter
from provisioning.access_log_serializers import AccessLogEntrySerializer
from provisioning.models import AccessLogEntry
from provisioning.views import GatewayChildViewSet


class AccessLogViewSet(GatewayChildViewSet, mixins.ListModelMixin):
    """The gateway's access log, newest first: one entry per request its replicas answered
    (the path without its query string; no credential is ever logged). Filters: ``from``,
    ``to`` (ISO 8601), ``status`` (``404`` or a class, ``5xx``), ``route``, ``consumer``,
    ``requestId``, ``method``."""

    model = AccessLogEntry
    serializer_class = AccessLogEntrySerializer
    filterset_class = AccessLogFilter
    ordering_aliases = {"timestamp": "timestamp"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AccessLogEntry.objects.none()
        return AccessLogEntry.objects.filter(
            tenant=self.tenant, gateway_name=self.gateway.name
        ).order_by("-timestamp", "-id")

    def resource_label(self) -> str:
        return "access logs"
