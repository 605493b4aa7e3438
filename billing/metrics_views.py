"""``GET /api/v1/tenants/{t}/gateways/{g}/metrics/``: a gateway's traffic, period by period."""

from datetime import UTC, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from billing.metrics import MAX_POINTS, STEPS, floor, series
from billing.query import parse_moment
from config.errors import FieldError, ValidationFailed
from gateways.models import Gateway
from tenants.api_base import TenantScopedViewSet

# Dimensions a later release will break traffic down by; asked for today, they are refused
# (rather than ignored, which would answer with the whole gateway's figures).
NOT_YET = ("route", "consumer")


class GatewayMetricsViewSet(TenantScopedViewSet):
    """Requests, responses by status class, error rates, bytes and latency percentiles of one
    gateway, per ``step`` (1m, 5m, 1h, 1d; periods aligned to UTC). ``from`` defaults to an
    hour before ``to``, ``to`` to now. Steps under an hour need ``from`` within the raw-sample
    retention; hourly and daily steps also carry replica-seconds."""

    pagination_class = None
    filter_backends = []

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="default: to − 1 h"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="default: now"),
            OpenApiParameter("step", OpenApiTypes.STR, enum=list(STEPS), default="1m"),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def list(self, request, *args, **kwargs):
        name = kwargs["gateway"]
        if not Gateway.objects.filter(tenant=self.tenant, name=name).exists():
            raise NotFound(f"gateway {name!r} not found")
        start, end, step = self._query(request.query_params)
        return Response({
            "gateway": name,
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
            "step": step,
            "points": series(self.tenant, name, start, end, step),
        })  # fmt: skip

    def resource_label(self) -> str:
        return "gateway metrics"

    def _query(self, params):
        errors: list[FieldError] = []
        for dimension in NOT_YET:
            if dimension in params:
                message = f"metrics by {dimension} are not available yet: ask for the gateway"
                errors.append(FieldError(dimension, message))
        step = params.get("step", "1m")
        if step not in STEPS:
            errors.append(FieldError("step", f"must be one of {', '.join(STEPS)}, not {step!r}"))
        now = timezone.now().astimezone(UTC)
        end = parse_moment(params["to"], "to", errors) if "to" in params else now
        start = parse_moment(params["from"], "from", errors) if "from" in params else None
        if not errors:
            width = STEPS[step]
            start = start or end - timedelta(hours=1)
            retention = now - timedelta(days=settings.GANTRY_USAGE_SAMPLE_RETENTION_DAYS)
            if end <= start:
                errors.append(FieldError("to", "must be after from"))
            elif (end - floor(start, width)) / width > MAX_POINTS:
                message = f"at most {MAX_POINTS} points: narrow from/to, or use a longer step"
                errors.append(FieldError("step", message))
            elif width < timedelta(hours=1) and start < retention:
                days = settings.GANTRY_USAGE_SAMPLE_RETENTION_DAYS
                message = f"steps under an hour cover the last {days} days: use 1h or 1d"
                errors.append(FieldError("from", message))
        if errors:
            raise ValidationFailed(errors)
        return start, end, step
