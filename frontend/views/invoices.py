"""A tenant's invoices: the final ones (newest first) with the running month's draft on top,
one invoice's lines, and its CSV and PDF: the API's bytes (``billing.documents``)."""

import django_tables2 as tables
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django_tables2 import RequestConfig

from billing import documents, invoices
from billing.models import Invoice
from config.errors import Conflict
from frontend.access import page_context, tenant_access
from frontend.views.common import PER_PAGE

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


class InvoiceTable(tables.Table):
    number = tables.Column(
        linkify=lambda record: f"/t/{record.tenant_slug}/invoices/{record.number}/"
    )
    period = tables.Column(accessor="period_start", verbose_name="Period", orderable=False)
    total = tables.Column(orderable=False)
    issued_at = tables.DateTimeColumn(verbose_name="Issued", format="Y-m-d H:i", orderable=False)

    class Meta:
        model = Invoice
        fields = ["number", "period", "total", "issued_at"]
        orderable = False
        empty_text = "No final invoice yet: a month is invoiced after it ends."

    def render_period(self, value):
        return f"{value:%Y-%m}"

    def render_total(self, record):
        return f"{documents.text(record.total, record.currency)} {record.currency}"


def _upcoming(tenant) -> dict | None:
    try:
        return documents.draft_body(invoices.upcoming(tenant))
    except Conflict:  # the plan has no price book
        return None


def _body(tenant, number: str) -> tuple[dict, str]:
    """The invoice's API body and its download name (another tenant's: 404)."""
    if number == "upcoming":
        body = _upcoming(tenant)
        if body is None:
            raise Http404("the plan has no prices yet")
        return body, f"GTY-{body['periodStart'][:7]}-{tenant.slug}-draft"
    invoice = Invoice.objects.filter(tenant=tenant, number=number).prefetch_related("lines")
    found = invoice.first()
    if found is None:
        raise Http404("no such invoice")
    return documents.invoice_body(found), found.number


@login_required
def invoice_list(request, tenant):
    access = tenant_access(request, tenant)
    table = InvoiceTable(Invoice.objects.filter(tenant=access.tenant).order_by("-period_start"))
    table.caption = "Final invoices, newest first"
    RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    context = page_context(
        request, access, "frontend:invoices", table=table, upcoming=_upcoming(access.tenant)
    )
    return render(request, "frontend/invoices/list.html", context)


@login_required
def invoice_detail(request, tenant, number):
    access = tenant_access(request, tenant)
    body, name = _body(access.tenant, number)
    context = page_context(request, access, "frontend:invoices", invoice=body, number=number)
    return render(request, "frontend/invoices/detail.html", context)


@login_required
def invoice_download(request, tenant, number, kind):
    access = tenant_access(request, tenant)
    if kind not in CONTENT_TYPES:
        raise Http404("CSV or PDF only")
    body, name = _body(access.tenant, number)
    if kind == "csv":
        content = documents.as_csv(body)
    else:
        content = documents.as_pdf(body, access.tenant.display_name)
    response = HttpResponse(content, content_type=CONTENT_TYPES[kind])
    response["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response
