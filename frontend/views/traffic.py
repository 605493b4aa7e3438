"""The console's traffic pages from the access logs: a gateway's access-log browser (the API's
FilterSet, paginated), and per-route and per-consumer charts and the "top routes / consumers"
tables, from the hourly analytics rollups (``billing.analytics``)."""

from datetime import UTC, timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from billing import analytics
from frontend.access import page_context, tenant_access
from frontend.charts import Series, chart
from frontend.tables import AccessLogTable
from frontend.views.common import table_page
from frontend.views.gateways import get_gateway, tabs
from provisioning.access_log_filters import AccessLogFilter
from provisioning.metering import percentile
from provisioning.models import AccessLogEntry

HOURS = 24
FILTER_LABELS = {
    "from": ("From", "ISO 8601, e.g. 2026-12-01T00:00:00Z"),
    "to": ("Until (before)", "ISO 8601, e.g. 2026-12-02T00:00:00Z"),
    "status": ("Status", "404, or a class: 5xx"),
    "route": ("Route", "a route's name"),
    "consumer": ("Consumer", "a consumer's name"),
    "requestId": ("Request id", ""),
    "method": ("Method", ""),
}
COLUMNS = ("id", "timestamp", "method", "path", "status", "flags", "route", "consumer",
           "duration_ms", "upstream_ms", "bytes_sent", "request_id", "replica")  # fmt: skip


def window() -> tuple:
    """The last ``HOURS`` whole hours and the current one (UTC)."""
    end = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end += timedelta(hours=1)
    return end - timedelta(hours=HOURS), end


def _p99(buckets: dict):
    value = percentile(buckets, 0.99)
    return None if value is None else round(value, 1)


def traffic_charts(tenant, what: str, gateway=None, route=None, consumer=None) -> list:
    """Requests, errors and p99 latency (the gateway's and the backend's) per hour over the
    last day, of ``what`` (words for the descriptions)."""
    start, end = window()
    found = analytics.hourly(tenant, start, end, gateway, route, consumer)
    hours = [start + timedelta(hours=n) for n in range(HOURS + 1)]
    labels = [moment.strftime("%m-%d %H:00") for moment in hours]
    empty = analytics._empty()
    rows = [found.get(moment, empty) for moment in hours]
    requests = [row["requests"] for row in rows]
    e4 = [row["responses_4xx"] for row in rows]
    e5 = [row["responses_5xx"] for row in rows]
    total = f"{sum(requests)} in all"
    return [
        chart("Requests", f"Requests to {what} per hour, last {HOURS} hours (UTC); {total}.",
              "requests", labels, [Series("requests", requests)]),
        chart("Errors", f"Responses to {what} with status 4xx and 5xx per hour; {sum(e4)} 4xx "
              f"and {sum(e5)} 5xx in all.", "responses", labels,
              [Series("4xx", e4, css="warn"), Series("5xx", e5, css="bad")]),
        chart("p99 latency", f"p99 latency of {what} in milliseconds per hour: the gateway's "
              "(whole request) and the backend's (upstream); gaps are hours without requests.",
              "ms", labels,
              [Series("gateway p99", [_p99(row["latency"]) for row in rows], kind="line",
                      css="p99"),
               Series("upstream p99", [_p99(row["upstream_latency"]) for row in rows],
                      kind="line")]),
    ]  # fmt: skip


def top_tables(tenant, gateway: str) -> dict:
    """The gateway's top routes and consumers over the last day."""
    start, end = window()
    found = {}
    for by in ("route", "consumer"):
        found[by] = [
            {"name": row["name"], "requests": row["requests"], "e4": row["responses_4xx"],
             "e5": row["responses_5xx"], "p99": _p99(row["latency"]),
             "upstream_p99": _p99(row["upstream_latency"])}
            for row in analytics.top(tenant, gateway, start, end, by)
        ]  # fmt: skip
    return found


@login_required
def gateway_access_logs(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    rows = AccessLogEntry.objects.filter(tenant=access.tenant, gateway_name=gateway.name).only(
        *COLUMNS
    )
    filterset, table = table_page(request, AccessLogFilter, rows, AccessLogTable, "Requests")
    for name, (label, placeholder) in FILTER_LABELS.items():
        field = filterset.form.fields[name]
        field.label = filterset.form[name].label = label
        if placeholder:
            field.widget.attrs["placeholder"] = placeholder
    context = page_context(
        request, access, "frontend:gateways", gateway=gateway, filter=filterset, table=table,
        tabs=tabs(gateway, "access-logs"),
    )  # fmt: skip
    status = 200 if filterset.is_valid() else 400
    return render(request, "frontend/gateways/access_logs.html", context, status=status)
