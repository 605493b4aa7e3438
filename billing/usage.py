"""Usage reports: the hourly rollups summed by hour or by day (UTC), per gateway."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.models import ReplicaHour, UsageHour
from provisioning.metering import COUNTERS, percentile

GRANULARITIES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass
class Period:
    gateway: str
    start: datetime
    counters: dict
    latency: dict
    milliseconds: int = 0


def _period_start(hour: datetime, granularity: str) -> datetime:
    return hour if granularity == "hour" else hour.replace(hour=0)


def usage_rows(tenant, start: datetime, end: datetime, granularity: str, gateway: str | None):
    """One row per gateway and period with any usage, oldest first: the API's shape."""
    step = GRANULARITIES[granularity]
    traffic = UsageHour.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end)
    replicas = ReplicaHour.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end)
    if gateway:
        traffic, replicas = (
            traffic.filter(gateway_name=gateway),
            replicas.filter(gateway_name=gateway),
        )
    periods: dict[tuple[str, datetime], Period] = {}

    def period(name: str, hour: datetime) -> Period:
        key = (name, _period_start(hour, granularity))
        if key not in periods:
            periods[key] = Period(name, key[1], dict.fromkeys(COUNTERS, 0), {})
        return periods[key]

    for row in traffic.iterator():
        found = period(row.gateway_name, row.hour)
        for name in COUNTERS:
            found.counters[name] += getattr(row, name)
        for bound, count in row.latency.items():
            found.latency[bound] = found.latency.get(bound, 0) + count
    for row in replicas.iterator():
        period(row.gateway_name, row.hour).milliseconds += row.milliseconds
    return [_row(periods[key], step) for key in sorted(periods, key=lambda k: (k[1], k[0]))]


def _row(found: Period, step: timedelta) -> dict:
    responses = {kind: found.counters[f"responses_{kind}"] for kind in CLASSES}
    p50, p99 = percentile(found.latency, 0.5), percentile(found.latency, 0.99)
    return {
        "gateway": found.gateway,
        "start": found.start.isoformat().replace("+00:00", "Z"),
        "end": (found.start + step).isoformat().replace("+00:00", "Z"),
        "requests": sum(responses.values()),
        "responses": responses,
        "bytesReceived": found.counters["bytes_received"],
        "bytesSent": found.counters["bytes_sent"],
        "latencyMs": {
            "p50": None if p50 is None else round(p50, 3),
            "p99": None if p99 is None else round(p99, 3),
        },
        "replicaSeconds": found.milliseconds / 1000,
    }


CSV_COLUMNS = (
    "gateway", "start", "end", "requests", "responses_1xx", "responses_2xx", "responses_3xx",
    "responses_4xx", "responses_5xx", "bytes_received", "bytes_sent", "latency_ms_p50",
    "latency_ms_p99", "replica_seconds",
)  # fmt: skip


def csv_values(row: dict) -> list:
    return [
        row["gateway"], row["start"], row["end"], row["requests"],
        *(row["responses"][kind] for kind in CLASSES), row["bytesReceived"], row["bytesSent"],
        row["latencyMs"]["p50"], row["latencyMs"]["p99"], row["replicaSeconds"],
    ]  # fmt: skip
