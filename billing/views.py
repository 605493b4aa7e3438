"""The usage API: ``GET /api/v1/tenants/{t}/usage/`` (JSON, or CSV with ``?format=csv``)."""

import csv
import io
from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from billing.usage import CSV_COLUMNS, GRANULARITIES, csv_values, usage_rows
from config.errors import FieldError, ValidationFailed
from tenants.api_base import TenantScopedViewSet

# At most this many periods per request: a year by day, a month (and a bit) by hour.
MAX_PERIODS = 800


class UsageCSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in data["results"]:
            writer.writerow(["" if value is None else value for value in csv_values(row)])
        return out.getvalue().encode()


def _moment(text: str, path: str, errors: list) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it names no zone)."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, datetime.min.time()) if day else None
    except ValueError:
        moment = None
    if moment is None:
        errors.append(FieldError(path, f"{text!r} is not a date (2026-12-01) or a date-time "
                                       "(2026-12-01T10:00:00Z)"))  # fmt: skip
        return None
    return moment.replace(tzinfo=UTC) if timezone.is_naive(moment) else moment.astimezone(UTC)


class UsageViewSet(TenantScopedViewSet):
    """Requests, responses by status class, bytes, latency and replica-seconds of the tenant's
    gateways, per hour or per day (UTC). ``from`` defaults to the start of this month, ``to``
    to now; ``gateway`` narrows to one gateway."""

    renderer_classes = [JSONRenderer, UsageCSVRenderer]
    pagination_class = None
    filter_backends = []

    @extend_schema(
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
        }
    )
    def finalize_response(self, request, response, *args, **kwargs):
        """Only usage rows are CSV: errors and OPTIONS answers are JSON, whatever was asked."""
        data = getattr(response, "data", None)
        if not (isinstance(data, dict) and "results" in data):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        start, end, granularity, gateway = self._query(request.query_params)
        rows = usage_rows(self.tenant, start, end, granularity, gateway)
        body = {
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
            "granularity": granularity,
            "results": rows,
        }
        response = Response(body)
        renderer = getattr(request, "accepted_renderer", None)
        if renderer is not None and renderer.format == "csv":
            name = f"usage-{self.tenant.slug}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def _query(self, params) -> tuple[datetime, datetime, str, str | None]:
        errors: list[FieldError] = []
        now = timezone.now().astimezone(UTC)
        granularity = params.get("granularity", "day")
        if granularity not in GRANULARITIES:
            errors.append(FieldError("granularity", f"must be hour or day, not {granularity!r}"))
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = now
        if "from" in params:
            start = _moment(params["from"], "from", errors) or start
        if "to" in params:
            end = _moment(params["to"], "to", errors) or end
        gateway = params.get("gateway") or None
        if not errors:
            step = GRANULARITIES[granularity]
            # Whole periods: from the start of ``from``'s period to the end of ``to``'s.
            start = start.replace(minute=0, second=0, microsecond=0)
            if granularity == "day":
                start = start.replace(hour=0)
            if end <= start:
                errors.append(FieldError("to", "must be after from"))
            elif (end - start) / step > MAX_PERIODS:
                limit = f"at most {MAX_PERIODS} {granularity}s per request"
                errors.append(FieldError("to", f"{limit}: narrow from/to, or ask by day"))
        if errors:
            raise ValidationFailed(errors)
        return start, end, granularity, gateway
