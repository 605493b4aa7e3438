"""A gateway's traffic over time, for charts: ``GET …/gateways/{g}/metrics/``.

The gateway's figures come from Envoy's counters (exact; what is billed). Asked for one route
or one consumer (or both), they come from the analytics rollups of the access log entries
(``billing.analytics``): minute rows for steps under an hour, hourly rows otherwise. The
upstream latency (the backend's time) is known only from the access logs, so it comes from the
analytics rows in both cases.

Steps under an hour come from the raw samples (kept ``GANTRY_USAGE_SAMPLE_RETENTION_DAYS``),
by the same arithmetic as the hourly rollups (``billing.rollups.traffic``); steps of an hour or
a day come from the hourly rollups themselves, so they are the numbers invoices are made of
and outlive the samples. A period ends where the next begins; every period in the range is a
point, zeros included, so a chart has no gaps where nothing was served.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from billing.analytics import merge
from billing.models import AnalyticsHour, AnalyticsMinute, ReplicaHour, UsageHour
from billing.rollups import traffic
from provisioning.metering import COUNTERS, percentile

STEPS = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
MAX_POINTS = 1440  # a day by the minute, two months by the hour
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor(moment: datetime, step: timedelta) -> datetime:
    """The start of ``moment``'s period: periods are aligned to the Unix epoch (UTC)."""
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // step) * step


@dataclass
class Point:
    counters: dict
    latency: dict
    milliseconds: int = 0
    upstream: dict | None = None
    requests: int | None = None  # from the access logs: every request, unanswered ones too


def series(
    tenant, gateway: str, start: datetime, end: datetime, step: str,
    route: str | None = None, consumer: str | None = None,
) -> list[dict]:  # fmt: skip
    """One point per period of ``step`` from ``start``'s to the one holding ``end``; of one
    route and/or one consumer when named (from the analytics rows)."""
    width = STEPS[step]
    first = floor(start, width)
    points: dict[datetime, Point] = {}
    moment = first
    while moment < end:
        points[moment] = Point(dict.fromkeys(COUNTERS, 0), {}, upstream={})
        moment += width
    table = AnalyticsMinute if width < timedelta(hours=1) else AnalyticsHour
    rows = table.objects.filter(
        tenant=tenant, gateway_name=gateway, start__gte=first, start__lt=moment
    )
    if route is not None or consumer is not None:
        if route is not None:
            rows = rows.filter(route=route)
        if consumer is not None:
            rows = rows.filter(consumer=consumer)
        for period, row in _analytics(rows, width).items():
            point = points[period]
            point.requests = row["requests"]
            point.counters.update({name: row[name] for name in COUNTERS if name in row})
            point.latency, point.upstream = row["latency"], row["upstream_latency"]
        return [_point(period, width, point, replicas=False) for period, point in points.items()]
    for period, row in _analytics(rows, width).items():
        points[period].upstream = row["upstream_latency"]
    if width < timedelta(hours=1):
        found = traffic(first, moment, width, tenant_id=tenant.pk, gateway=gateway)
        for (_tenant, _gateway, period, _port), row in found.items():
            _add(points[period], row["counters"], row["latency"])
    else:
        hours = UsageHour.objects.filter(
            tenant=tenant, gateway_name=gateway, hour__gte=first, hour__lt=moment
        )
        for row in hours.iterator():
            counters = {name: getattr(row, name) for name in COUNTERS}
            _add(points[floor(row.hour, width)], counters, row.latency)
        replicas = ReplicaHour.objects.filter(
            tenant=tenant, gateway_name=gateway, hour__gte=first, hour__lt=moment
        )
        for row in replicas.iterator():
            points[floor(row.hour, width)].milliseconds += row.milliseconds
    return [_point(period, width, point) for period, point in points.items()]


def _analytics(rows, width: timedelta) -> dict[datetime, dict]:
    """period → the sums of the analytics rows in it."""
    found: dict[datetime, dict] = {}
    for row in rows.iterator():
        period = floor(row.start, width)
        if period not in found:
            found[period] = {"requests": 0, "latency": {}, "upstream_latency": {},
                             **{f"responses_{kind}": 0 for kind in CLASSES},
                             "bytes_received": 0, "bytes_sent": 0}  # fmt: skip
        merge(found[period], row)
    return found


def _add(point: Point, counters: dict, latency: dict) -> None:
    for name in COUNTERS:
        point.counters[name] += counters[name]
    for bound, count in latency.items():
        point.latency[bound] = point.latency.get(bound, 0) + count


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _percentiles(buckets: dict) -> dict:
    return {name: _ms(percentile(buckets, q)) for name, q in (("p50", 0.5), ("p95", 0.95),
                                                             ("p99", 0.99))}  # fmt: skip


def _point(period: datetime, width: timedelta, point: Point, replicas: bool = True) -> dict:
    responses = {kind: point.counters[f"responses_{kind}"] for kind in CLASSES}
    requests = sum(responses.values()) if point.requests is None else point.requests
    found = {
        "start": _iso(period),
        "end": _iso(period + width),
        "requests": requests,
        "responses": responses,
        "errorRate": round(responses["5xx"] / requests, 6) if requests else 0.0,
        "clientErrorRate": round(responses["4xx"] / requests, 6) if requests else 0.0,
        "bytesReceived": point.counters["bytes_received"],
        "bytesSent": point.counters["bytes_sent"],
        "latencyMs": _percentiles(point.latency),
        "upstreamLatencyMs": _percentiles(point.upstream or {}),
    }
    if replicas and width >= timedelta(hours=1):
        found["replicaSeconds"] = point.milliseconds / 1000
    return found
