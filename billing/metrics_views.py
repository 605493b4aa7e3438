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

DIMENSIONS = ("route", "consumer")


class GatewayMetricsViewSet(TenantScopedViewSet):
    """Requests, responses by status class, error rates, bytes and latency percentiles of one
    gateway, per ``step`` (1m, 5m, 1h, 1d; periods aligned to UTC). ``from`` defaults to an
    hour before ``to``, ``to`` to now. Steps under an hour need ``from`` within the raw-sample
    retention; hourly and daily steps also carry replica-seconds. With ``route`` and/or
    ``consumer`` (``""`` names requests with none), the figures are that route's or consumer's,
    from the access logs; steps under an hour then need ``from`` within the minute analytics'
    retention. ``upstreamLatencyMs`` is always from the access logs."""

    pagination_class = None
    filter_backends = []

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="default: to − 1 h"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="default: now"),
            OpenApiParameter("step", OpenApiTypes.STR, enum=list(STEPS), default="1m"),
            OpenApiParameter("route", OpenApiTypes.STR, description="one route's traffic"),
            OpenApiParameter("consumer", OpenApiTypes.STR, description="one consumer's traffic"),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def list(self, request, *args, **kwargs):
        name = kwargs["gateway"]
        if not Gateway.objects.filter(tenant=self.tenant, name=name).exists():
            raise NotFound(f"gateway {name!r} not found")
        start, end, step = self._query(request.query_params)
        named = {
            key: request.query_params[key] for key in DIMENSIONS if key in request.query_params
        }
        answer = {
            "gateway": name,
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
            "step": step,
        }
        answer.update(named)
        answer["points"] = series(self.tenant, name, start, end, step, **named)
        return Response(answer)

    def resource_label(self) -> str:
        return "gateway metrics"

    def _query(self, params):
        errors: list[FieldError] = []
        for dimension in DIMENSIONS:
            if len(params.get(dimension, "")) > 255:
                errors.append(FieldError(dimension, "at most 255 characters"))
        analytics = any(dimension in params for dimension in DIMENSIONS)
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
            minutes = now - timedelta(hours=settings.GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS)
            if end <= start:
                errors.append(FieldError("to", "must be after from"))
            elif (end - floor(start, width)) / width > MAX_POINTS:
                message = f"at most {MAX_POINTS} points: narrow from/to, or use a longer step"
                errors.append(FieldError("step", message))
            elif width < timedelta(hours=1) and start < retention:
                days = settings.GANTRY_USAGE_SAMPLE_RETENTION_DAYS
                message = f"steps under an hour cover the last {days} days: use 1h or 1d"
                errors.append(FieldError("from", message))
            elif analytics and width < timedelta(hours=1) and start < minutes:
                hours = settings.GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS
                message = f"per route or consumer, steps under an hour cover the last {hours} hours"
                errors.append(FieldError("from", message + ": use 1h or 1d"))
        if errors:
            raise ValidationFailed(errors)
        return start, end, step
