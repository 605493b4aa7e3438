"""Usage reports: the hourly and daily rollups summed by hour or by day (UTC), per gateway."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import F, Sum
from django.db.models.functions import TruncDay

from billing.models import ReplicaHour, UsageDay, UsageHour
from provisioning.metering import COUNTERS, percentile

DAY = timedelta(days=1)
GRANULARITIES = {"hour": timedelta(hours=1), "day": DAY}
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


def _period(granularity: str):
    """The SQL expression of a row's period start (UTC)."""
    return F("hour") if granularity == "hour" else TruncDay("hour", tzinfo=UTC)


def usage_rows(
    tenant, start: datetime, end: datetime, granularity: str, gateway: str | None,
    combined: bool = False,
) -> list[dict]:  # fmt: skip
    """One row per gateway and period with any usage, oldest first: the API's shape. With
    ``combined``, one row per period for all the gateways together (``gateway`` empty): counts
    add up, and latency percentiles come from the gateways' histograms added together.

    Whole days come from the daily rollups (``UsageDay``: a month of a hundred gateways is
    3,000 rows); hours, and the partial days at either end of a range, from the hourly ones,
    summed per gateway and period in the database (the latency buckets too, on PostgreSQL)."""
    step = GRANULARITIES[granularity]
    periods: dict[tuple[str, datetime], Period] = {}

    def period(_tenant_id, name: str, moment: datetime) -> Period:
        key = ("" if combined else name, moment.astimezone(UTC))
        if key not in periods:
            periods[key] = Period(key[0], key[1], dict.fromkeys(COUNTERS, 0), {})
        return periods[key]

    def rows(model, field: str, low: datetime, high: datetime):
        found = model.objects.filter(tenant=tenant, **{f"{field}__gte": low, f"{field}__lt": high})
        return found.filter(gateway_name=gateway) if gateway else found

    spans = [(start, end)]
    if granularity == "day":
        first, last = day_of(start), day_of(end)
        first += DAY if first < start else timedelta(0)
        if first < last:
            spans = [(start, first), (last, end)]
            for row in rows(UsageDay, "day", first, last).iterator(chunk_size=2000):
                found = period(row.tenant_id, row.gateway_name, row.day)
                add_counters(found, {name: getattr(row, name) for name in COUNTERS}, row.latency)
                found.milliseconds += row.replica_milliseconds
    for low, high in spans:
        if low < high:
            sum_hours(rows(UsageHour, "hour", low, high), rows(ReplicaHour, "hour", low, high),
                      granularity, period)  # fmt: skip
    return [_row(periods[key], step) for key in sorted(periods, key=lambda k: (k[1], k[0]))]


def day_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def add_counters(found: Period, counters: dict, latency: dict) -> None:
    for name in COUNTERS:
        found.counters[name] += counters[name] or 0
    for bound, count in latency.items():
        found.latency[bound] = found.latency.get(bound, 0) + count


def sum_hours(traffic, replicas, granularity: str, period) -> None:
    """Adds the hourly rows of ``traffic`` (``UsageHour``) and ``replicas`` (``ReplicaHour``)
    into ``period(tenant id, gateway, period start)``'s ``Period``, summed per tenant, gateway
    and period by the database."""
    sums = (
        traffic.annotate(period=_period(granularity))
        .values("tenant_id", "gateway_name", "period")
        .annotate(**{f"sum_{name}": Sum(name) for name in COUNTERS})
        .order_by()
    )
    for row in sums:
        found = period(row["tenant_id"], row["gateway_name"], row["period"])
        add_counters(found, {name: row[f"sum_{name}"] for name in COUNTERS}, {})
    for tenant_id, name, moment, bound, count in _latency_buckets(traffic, granularity):
        found = period(tenant_id, name, moment).latency
        found[bound] = found.get(bound, 0) + count
    replica_sums = (
        replicas.annotate(period=_period(granularity))
        .values_list("tenant_id", "gateway_name", "period")
        .annotate(total=Sum("milliseconds"))
        .order_by()
    )
    for tenant_id, name, moment, milliseconds in replica_sums:
        period(tenant_id, name, moment).milliseconds += milliseconds or 0


def _latency_buckets(traffic, granularity: str):
    """(tenant id, gateway, period start, bucket, count) summed over the rows of ``traffic``."""
    if connection.vendor != "postgresql":
        fields = ("tenant_id", "gateway_name", "hour", "latency")
        for tenant_id, name, hour, latency in traffic.values_list(*fields):
            for bound, count in latency.items():
                yield (
                    tenant_id,
                    name,
                    _period_start(hour.astimezone(UTC), granularity),
                    bound,
                    count,
                )
        return
    inner, params = traffic.values(
        "tenant_id", "gateway_name", "hour", "latency"
    ).query.sql_with_params()
    unit = "hour" if granularity == "hour" else "day"
    # ``inner`` is the ORM's own SQL for the queryset, with its values kept as parameters.
    select = "SELECT hours.tenant_id, hours.gateway_name, "
    select += "date_trunc(%s, hours.hour AT TIME ZONE 'UTC'), "
    sums = "bucket.key, SUM(bucket.value::bigint) "
    source = f"FROM ({inner}) AS hours, jsonb_each_text(hours.latency) AS bucket "
    sql = select + sums + source + "GROUP BY 1, 2, 3, 4"
    with connection.cursor() as cursor:
        cursor.execute(sql, [unit, *params])
        for tenant_id, name, moment, bound, count in cursor.fetchall():
            yield tenant_id, name, moment.replace(tzinfo=UTC), bound, int(count)


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
