"""Usage of a tenant's gateways (or one gateway's, a gateway tab): requests, errors, latency
and replica-hours per hour or per day, as charts, from ``billing.usage.usage_rows`` (what the
usage API answers), and the same CSV the API gives with ``?format=csv``."""

from datetime import UTC, datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode

from billing.usage import GRANULARITIES, usage_rows
from billing.views import MAX_PERIODS, UsageCSVRenderer
from frontend.access import page_context, tenant_access
from frontend.charts import Series, chart
from frontend.views.gateways import get_gateway, tabs
from frontend.views.traffic import top_tables

# The ranges offered: (value, label, span, default granularity).
RANGES = {
    "24h": ("last 24 hours", timedelta(hours=24), "hour"),
    "7d": ("last 7 days", timedelta(days=7), "hour"),
    "30d": ("last 30 days", timedelta(days=30), "day"),
    "90d": ("last 90 days", timedelta(days=90), "day"),
}


def query(params) -> tuple[dict, list[str]]:
    """The chosen range, granularity, start and end (the API's rounding: from the start of the
    first period to now), and errors naming the parameter."""
    errors = []
    span = params.get("range") or "24h"
    if span not in RANGES:
        errors.append(f"range: {span!r} is not one of {', '.join(RANGES)}")
        span = "24h"
    label, delta, default = RANGES[span]
    granularity = params.get("granularity") or default
    if granularity not in GRANULARITIES:
        errors.append(f"granularity: must be hour or day, not {granularity!r}")
        granularity = default
    end = timezone.now().astimezone(UTC)
    start = (end - delta).replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        start = start.replace(hour=0)
    if (end - start) / GRANULARITIES[granularity] > MAX_PERIODS:
        errors.append(f"granularity: at most {MAX_PERIODS} {granularity}s: choose by day")
    chosen = {"range": span, "label": label, "granularity": granularity, "start": start,
              "end": end}  # fmt: skip
    return chosen, errors


def periods(start, end, granularity: str) -> list:
    step, moment, found = GRANULARITIES[granularity], start, []
    while moment < end:
        found.append(moment)
        moment += step
    return found


def _label(moment, granularity: str) -> str:
    return moment.strftime("%m-%d %H:00" if granularity == "hour" else "%Y-%m-%d")


def charts(rows: list[dict], chosen: dict, one_gateway: bool) -> list:
    """Requests, errors, latency and replica-hours per period (for a tenant, its gateways'
    rows combined: their latency histograms added, so p50 and p99 are of all its requests)."""
    granularity = chosen["granularity"]
    starts = periods(chosen["start"], chosen["end"], granularity)
    index = {moment: i for i, moment in enumerate(starts)}
    n = len(starts)
    requests, e4, e5, hours = [0] * n, [0] * n, [0] * n, [0.0] * n
    p50: list = [None] * n
    p99: list = [None] * n
    for row in rows:
        i = index.get(_parse(row["start"]))
        if i is None:
            continue
        requests[i] += row["requests"]
        e4[i] += row["responses"]["4xx"]
        e5[i] += row["responses"]["5xx"]
        hours[i] += row["replicaSeconds"] / 3600
        p50[i], p99[i] = row["latencyMs"]["p50"], row["latencyMs"]["p99"]
    hours = [round(h, 3) for h in hours]
    labels = [_label(moment, granularity) for moment in starts]
    per = f"per {granularity}"
    which = "" if one_gateway else " of all the gateways' requests"
    return [
        chart("Requests", f"Requests answered {per}, {chosen['label']}; "
              f"{sum(requests)} in all.", "requests", labels,
              [Series("requests", requests)]),
        chart("Errors", f"Responses with status 4xx and 5xx {per}, {chosen['label']}; "
              f"{sum(e4)} 4xx and {sum(e5)} 5xx in all.", "responses", labels,
              [Series("4xx", e4, css="warn"), Series("5xx", e5, css="bad")]),
        chart("Latency", f"p50 and p99 latency in milliseconds {per}{which}, "
              f"{chosen['label']}; gaps are periods without requests.", "ms", labels,
              [Series("p50", p50, kind="line"), Series("p99", p99, kind="line", css="p99")]),
        chart("Replica-hours", f"Hours of gateway replicas running {per}, {chosen['label']}; "
              f"{round(sum(hours), 3)} in all.", "replica-hours", labels,
              [Series("replica-hours", hours)]),
    ]  # fmt: skip


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _page(request, access, section, gateway=None, **extra):
    chosen, errors = query(request.GET)
    name = gateway.name if gateway else None
    rows = [] if errors else usage_rows(access.tenant, chosen["start"], chosen["end"],
                                        chosen["granularity"], name, combined=True)  # fmt: skip
    csv_query = urlencode({"range": chosen["range"], "granularity": chosen["granularity"]})
    context = page_context(
        request, access, section, gateway=gateway, chosen=chosen, errors=errors,
        ranges=[(value, item[0]) for value, item in RANGES.items()],
        charts=[] if errors else charts(rows, chosen, one_gateway=gateway is not None),
        csv_query=csv_query, **extra,
    )  # fmt: skip
    return render(request, "frontend/usage.html", context, status=400 if errors else 200)


def _csv(request, access, gateway=None):
    chosen, errors = query(request.GET)
    if errors:
        return HttpResponse("\n".join(errors) + "\n", status=400, content_type="text/plain")
    rows = usage_rows(access.tenant, chosen["start"], chosen["end"], chosen["granularity"],
                      gateway.name if gateway else None)  # fmt: skip
    body = UsageCSVRenderer().render({"results": rows})
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    start, end = chosen["start"], chosen["end"]
    name = f"usage-{access.tenant.slug}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
def tenant_usage(request, tenant):
    return _page(request, tenant_access(request, tenant), "frontend:usage")


@login_required
def tenant_usage_csv(request, tenant):
    return _csv(request, tenant_access(request, tenant))


@login_required
def gateway_usage(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    return _page(request, access, "frontend:gateways", gateway, tabs=tabs(gateway, "usage"),
                 top=top_tables(access.tenant, gateway.name))  # fmt: skip


@login_required
def gateway_usage_csv(request, tenant, gateway):
    access = tenant_access(request, tenant)
    return _csv(request, access, get_gateway(access, gateway))
