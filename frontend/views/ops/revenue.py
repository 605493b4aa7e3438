"""Revenue and usage across tenants for one month (``billing.reports``, as the API)."""

from django.shortcuts import render
from django.utils import timezone

from billing import invoices, reports
from config.errors import ValidationFailed
from frontend.ops_access import operator_required, ops_context


@operator_required
def revenue(request):
    now = timezone.now()
    text = request.GET.get("month") or f"{invoices.month_of(now):%Y-%m}"
    error = ""
    try:
        month = invoices.parse_month(text)
    except ValidationFailed as failed:
        error = failed.fields[0].message
        month = invoices.month_of(now)
    report = reports.report(month, now)
    context = ops_context("frontend:ops-revenue", report=report, month_text=text, error=error)
    return render(request, "frontend/ops/revenue.html", context, status=400 if error else 200)
