"""The billing API: usage (JSON, or CSV with ``?format=csv``), invoices (JSON, CSV, PDF),
budgets, and the plans' price books (operators)."""

import csv
import io
from datetime import UTC, datetime

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, permissions
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import budgets, documents, invoices, prices, reports
from billing.models import Invoice, PriceBook
from billing.query import parse_moment
from billing.serializers import (
    BudgetSerializer,
    BudgetUpdateSerializer,
    InvoiceSerializer,
    PriceBookSerializer,
    RevenueSerializer,
)
from billing.usage import CSV_COLUMNS, GRANULARITIES, csv_values, usage_rows
from config.api.schema import ErrorEnvelopeSerializer
from config.errors import FieldError, NotFound, ValidationFailed
from provisioning.cluster_views import IsOperator
from tenants.api_base import TenantScopedViewSet
from tenants.audit import Actor
from tenants.models import Plan
from tenants.roles import Role
from tenants.views import IsStaffOrReadOnly

CONFLICT = OpenApiResponse(ErrorEnvelopeSerializer, description="The plan has no price book.")

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
            start = parse_moment(params["from"], "from", errors) or start
        if "to" in params:
            end = parse_moment(params["to"], "to", errors) or end
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


# -- invoices -----------------------------------------------------------------------------------


class InvoiceCSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return documents.as_csv(data)


class InvoicePDFRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        view = (renderer_context or {}).get("view")
        tenant = getattr(view, "tenant", None)
        return documents.as_pdf(data, tenant.display_name if tenant else "")


FORMAT = OpenApiParameter(
    "format", str, enum=["json", "csv", "pdf"], required=False,
    description="json (default), csv (the lines, then subtotal and total rows) or pdf",
)  # fmt: skip
DOCUMENT_RESPONSES = {
    (200, "application/json"): InvoiceSerializer,
    (200, "text/csv"): OpenApiTypes.STR,
    (200, "application/pdf"): OpenApiTypes.BINARY,
}


def _is_document(data) -> bool:
    return isinstance(data, dict) and "lines" in data and "total" in data


@extend_schema_view(
    list=extend_schema(responses=InvoiceSerializer(many=True)),
    retrieve=extend_schema(parameters=[FORMAT], responses=DOCUMENT_RESPONSES),
)
class InvoiceViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """The tenant's final monthly invoices, newest first, and the upcoming one (the running
    month so far, a draft). One invoice as JSON, CSV (``?format=csv``) or PDF
    (``?format=pdf``). Every member reads them."""

    renderer_classes = [JSONRenderer, InvoiceCSVRenderer, InvoicePDFRenderer]
    serializer_class = InvoiceSerializer
    filter_backends = []
    lookup_field = "number"
    lookup_value_regex = "[A-Za-z0-9-]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invoice.objects.none()
        return Invoice.objects.filter(tenant=self.tenant).prefetch_related("lines")

    def finalize_response(self, request, response, *args, **kwargs):
        """Only one invoice is CSV or PDF: lists, errors and OPTIONS answers are JSON."""
        if not _is_document(getattr(response, "data", None)):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([documents.invoice_body(i) for i in page])

    def retrieve(self, request, *args, **kwargs):
        invoice = self.get_object()
        return self._document(request, documents.invoice_body(invoice), invoice.number)

    @extend_schema(parameters=[FORMAT], responses={**DOCUMENT_RESPONSES, 409: CONFLICT})
    @action(detail=False, methods=["get"])
    def upcoming(self, request, *args, **kwargs):
        """The running month so far, priced now: a draft, never stored."""
        body = documents.draft_body(invoices.upcoming(self.tenant))
        name = f"GTY-{body['periodStart'][:7]}-{self.tenant.slug}-draft"
        return self._document(request, body, name)

    def _document(self, request, body: dict, name: str) -> Response:
        response = Response(body)
        renderer = getattr(request, "accepted_renderer", None)
        if renderer is not None and renderer.format in ("csv", "pdf"):
            disposition = f'attachment; filename="{name}.{renderer.format}"'
            response["Content-Disposition"] = disposition
        return response


# -- budgets ------------------------------------------------------------------------------------


class BudgetView(TenantScopedViewSet):
    """The tenant's monthly budget, what the running month has cost so far, and this month's
    alerts (80 % and 100 %, each recorded once). Every member reads it; admins set it."""

    write_role = Role.ADMIN
    pagination_class = None
    filter_backends = []
    serializer_class = BudgetUpdateSerializer

    def resource_label(self) -> str:
        return "the budget"

    def get_object(self):
        return self.tenant  # the budget is the tenant's (OPTIONS asks for it)

    @extend_schema(responses={200: BudgetSerializer, 409: CONFLICT})
    def retrieve(self, request, *args, **kwargs):
        return Response(budgets.status(self.tenant))

    @extend_schema(request=BudgetUpdateSerializer, responses=BudgetSerializer)
    def update(self, request, *args, **kwargs):
        budgets.set_budget(self.actor, self.tenant, request.data)
        return Response(budgets.status(self.tenant))


# -- price books (operators) --------------------------------------------------------------------


class PriceBookView(APIView):
    """A plan's prices. Everyone signed in reads them; platform operators set them."""

    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]

    def _plan(self, name: str) -> Plan:
        return get_object_or_404(Plan, name=name)

    @extend_schema(responses={200: PriceBookSerializer})
    def get(self, request, name: str):
        book = PriceBook.objects.filter(plan=self._plan(name)).select_related("plan").first()
        if book is None:
            raise NotFound(f"plan {name!r} has no price book yet")
        return Response(prices.as_json(book))

    @extend_schema(request=PriceBookSerializer, responses={200: PriceBookSerializer})
    def put(self, request, name: str):
        book = prices.set_price_book(Actor.from_request(request), self._plan(name), request.data)
        return Response(prices.as_json(book))


# -- revenue (operators) ------------------------------------------------------------------------


class IsRevenueOperator(IsOperator):
    message = "only platform operators may see the revenue report"


MONTH = OpenApiParameter(
    "month", str, required=False, description="YYYY-MM (UTC); default: the running month"
)


class RevenueView(APIView):
    """One month's revenue and usage across every tenant (platform operators only): totals
    from final invoices (the running month: from the upcoming computation), per currency and
    per plan (currencies are never added together), top tenants, requests and replica-hours."""

    permission_classes = [permissions.IsAuthenticated, IsRevenueOperator]

    @extend_schema(parameters=[MONTH], responses={200: RevenueSerializer})
    def get(self, request):
        text = request.query_params.get("month")
        now = timezone.now()
        month = invoices.parse_month(text) if text is not None else invoices.month_of(now)
        return Response(reports.report(month, now))
