"""Traffic per gateway × route × consumer, minute by minute, from the access log entries.

The counters Envoy keeps (``provisioning.metering``) are exact and billed but know only the
gateway's listener port; each access log entry (``provisioning.AccessLogEntry``) knows its
route and consumer. Every entry is counted (nothing is sampled): requests, responses by status
class, bytes, and histograms of ``duration_ms`` (the gateway's time) and ``upstream_ms`` (the
backend's) in fixed buckets of two significant digits, so percentiles are interpolated by
``provisioning.metering.percentile`` like the counters' ones.

``rollup_minutes(start, end)`` recomputes the minutes in the range whole and replaces their
rows, then the hours holding them from their minutes, in one transaction: running it twice, or
again after a late entry, leaves the right rows. ``rollup_recent`` is the periodic run.
"""

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from billing.models import AnalyticsHour, AnalyticsMinute, AnalyticsState
from provisioning.models import AccessLogEntry

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
SUMS = ("requests", *(f"responses_{kind}" for kind in CLASSES), "bytes_received", "bytes_sent")
# Entries are stored in short transactions by the runtime agent: the periodic run recomputes
# this far back, so an entry committed just after the previous run is counted.
LOOKBACK = timedelta(minutes=10)


def floor(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // width) * width


def bucket(milliseconds: int) -> str:
    """The lower bound of the bucket holding ``milliseconds``: the value itself under 100, then
    two significant digits (120 → "120", 1234 → "1200"); the key ``percentile`` reads."""
    if milliseconds < 100:
        return str(int(milliseconds))
    unit = 10 ** (int(math.log10(milliseconds)) - 1)
    return str(milliseconds // unit * unit)


# PostgreSQL: the same buckets, as an expression of an integer column.
_BUCKET_SQL = (
    "CASE WHEN {c} < 100 THEN {c}::bigint ELSE ({c} / (10 ^ (length({c}::text) - 2))::bigint)"
    " * (10 ^ (length({c}::text) - 2))::bigint END"
)


def _empty() -> dict:
    return {**dict.fromkeys(SUMS, 0), "latency": {}, "upstream_latency": {}}


def counts(start: datetime, end: datetime) -> dict[tuple, dict]:
    """(tenant id, gateway, route, consumer, minute) → the sums of the entries in [start, end).
    PostgreSQL sums them; elsewhere (SQLite), Python."""
    if connection.vendor == "postgresql":
        return _counts_sql(start, end)
    return counts_in_python(start, end)


def counts_in_python(start: datetime, end: datetime) -> dict[tuple, dict]:
    """The reference arithmetic, one entry at a time."""
    rows: dict[tuple, dict] = {}
    fields = ("tenant_id", "gateway_name", "route", "consumer", "timestamp", "status",
              "bytes_received", "bytes_sent", "duration_ms", "upstream_ms")  # fmt: skip
    entries = AccessLogEntry.objects.filter(timestamp__gte=start, timestamp__lt=end)
    for (
        tenant,
        gateway,
        route,
        consumer,
        at,
        status,
        received,
        sent,
        took,
        upstream,
    ) in entries.values_list(*fields).iterator(chunk_size=5000):
        row = rows.setdefault((tenant, gateway, route, consumer, floor(at, MINUTE)), _empty())
        row["requests"] += 1
        if 100 <= status < 600:
            row[f"responses_{status // 100}xx"] += 1
        row["bytes_received"] += received
        row["bytes_sent"] += sent
        for name, value in (("latency", took), ("upstream_latency", upstream)):
            if value is not None:
                key = bucket(value)
                row[name][key] = row[name].get(key, 0) + 1
    return rows


def _counts_sql(start: datetime, end: datetime) -> dict[tuple, dict]:
    table = AccessLogEntry._meta.db_table
    keys = "tenant_id, gateway_name, route, consumer, date_trunc('minute', timestamp)"
    where = f"FROM {table} WHERE timestamp >= %s AND timestamp < %s"
    classes = ", ".join(
        f"count(*) FILTER (WHERE status >= {n}00 AND status < {n + 1}00)" for n in range(1, 6)
    )
    rows: dict[tuple, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {keys}, count(*), {classes}, coalesce(sum(bytes_received), 0),"
            f" coalesce(sum(bytes_sent), 0) {where} GROUP BY 1, 2, 3, 4, 5",
            [start, end],
        )
        for tenant, gateway, route, consumer, minute, *values in cursor.fetchall():
            row = rows.setdefault((tenant, gateway, route, consumer, minute), _empty())
            for name, value in zip(SUMS, values, strict=True):
                row[name] = int(value)
        for column, name in (("duration_ms", "latency"), ("upstream_ms", "upstream_latency")):
            expression = _BUCKET_SQL.format(c=column)
            cursor.execute(
                f"SELECT {keys}, {expression}, count(*) {where} AND {column} IS NOT NULL"
                " GROUP BY 1, 2, 3, 4, 5, 6",
                [start, end],
            )
            for tenant, gateway, route, consumer, minute, lower, count in cursor.fetchall():
                rows[(tenant, gateway, route, consumer, minute)][name][str(int(lower))] = count
    return rows


def merge(into: dict, row) -> None:
    """Adds ``row``'s counts (a dict, or an analytics model row) to ``into``."""
    for name in SUMS:
        into[name] += row[name] if isinstance(row, dict) else getattr(row, name)
    for name in ("latency", "upstream_latency"):
        buckets = row[name] if isinstance(row, dict) else getattr(row, name)
        for lower, count in buckets.items():
            into[name][lower] = into[name].get(lower, 0) + count


@transaction.atomic
def rollup_minutes(start: datetime, end: datetime) -> tuple[int, int]:
    """Recomputes the whole minutes from ``start``'s to the one holding ``end`` from the entries,
    then the hours holding them from their minutes; the number of (minute, hour) rows written."""
    start = floor(start, MINUTE)
    end = floor(end, MINUTE) + (MINUTE if end != floor(end, MINUTE) else timedelta(0))
    found = counts(start, end)
    AnalyticsMinute.objects.filter(start__gte=start, start__lt=end).delete()
    AnalyticsMinute.objects.bulk_create(
        (
            AnalyticsMinute(
                tenant_id=key[0],
                gateway_name=key[1],
                route=key[2],
                consumer=key[3],
                start=key[4],
                **row,
            )  # fmt: skip
            for key, row in found.items()
        ),
        batch_size=2000,
    )
    first, last = floor(start, HOUR), floor(end - MINUTE, HOUR) + HOUR
    hours: dict[tuple, dict] = defaultdict(_empty)
    for minute in AnalyticsMinute.objects.filter(start__gte=first, start__lt=last).iterator():
        key = (minute.tenant_id, minute.gateway_name, minute.route, minute.consumer,
               floor(minute.start, HOUR))  # fmt: skip
        merge(hours[key], minute)
    AnalyticsHour.objects.filter(start__gte=first, start__lt=last).delete()
    AnalyticsHour.objects.bulk_create(
        (
            AnalyticsHour(
                tenant_id=key[0],
                gateway_name=key[1],
                route=key[2],
                consumer=key[3],
                start=key[4],
                **row,
            )  # fmt: skip
            for key, row in hours.items()
        ),
        batch_size=2000,
    )
    return len(found), len(hours)


@transaction.atomic
def rollup_recent(now: datetime | None = None) -> tuple[int, int]:
    """The periodic rollup: the minutes from the previous run's end (at most the minute
    retention back; the first run starts at the oldest entry within it, less ``LOOKBACK``) to
    now, and the minutes of entries stored since the previous run with older timestamps."""
    now = now or timezone.now()
    state, _ = AnalyticsState.objects.select_for_update().get_or_create(pk=1)
    oldest = now - timedelta(hours=settings.GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS)
    if state.rolled_until is None:
        first = AccessLogEntry.objects.filter(timestamp__gte=oldest).aggregate(at=Min("timestamp"))
        start = min(now - LOOKBACK, first["at"] or now)
    else:
        start = max(oldest, min(now, state.rolled_until) - LOOKBACK)
    newest = AccessLogEntry.objects.aggregate(id=Max("id"))["id"] or 0
    late = AccessLogEntry.objects.filter(
        id__gt=state.entries_seen_id, id__lte=newest, timestamp__lt=start, timestamp__gte=oldest
    )
    minutes = sorted({floor(at, MINUTE) for at in late.values_list("timestamp", flat=True)})
    written = rollup_minutes(start, now)
    for minute in minutes:
        rollup_minutes(minute, minute + MINUTE)
    state.rolled_until, state.entries_seen_id = now, newest
    state.save()
    return written


def prune(now: datetime | None = None) -> tuple[int, int]:
    """Deletes minute rows older than the minute retention and hour rows older than the
    usage retention; the numbers deleted."""
    now = now or timezone.now()
    minutes = now - timedelta(hours=settings.GANTRY_ANALYTICS_MINUTE_RETENTION_HOURS)
    hours = now - timedelta(days=settings.GANTRY_USAGE_SAMPLE_RETENTION_DAYS)
    deleted_minutes, _ = AnalyticsMinute.objects.filter(start__lt=minutes).delete()
    deleted_hours, _ = AnalyticsHour.objects.filter(start__lt=hours).delete()
    return deleted_minutes, deleted_hours


def hourly(
    tenant, start: datetime, end: datetime, gateway: str | None = None,
    route: str | None = None, consumer: str | None = None,
) -> dict[datetime, dict]:  # fmt: skip
    """hour → the sums of a tenant's hourly rows in [start, end): of one gateway, route and/or
    consumer when named, else combined (histograms added, so percentiles are of them all)."""
    rows = AnalyticsHour.objects.filter(tenant=tenant, start__gte=start, start__lt=end)
    for name, value in (("gateway_name", gateway), ("route", route), ("consumer", consumer)):
        if value is not None:
            rows = rows.filter(**{name: value})
    found: dict[datetime, dict] = defaultdict(_empty)
    for row in rows.iterator():
        merge(found[row.start], row)
    return dict(found)


def top(tenant, gateway: str, start: datetime, end: datetime, by: str,
        limit: int = 10) -> list[dict]:  # fmt: skip
    """The ``limit`` routes or consumers (``by``) of a gateway with the most requests in the
    hours of [start, end): name, the sums and the histograms, most requests first."""
    rows = AnalyticsHour.objects.filter(
        tenant=tenant, gateway_name=gateway, start__gte=start, start__lt=end
    )
    found: dict[str, dict] = defaultdict(_empty)
    for row in rows.iterator():
        merge(found[getattr(row, by)], row)
    ordered = sorted(found.items(), key=lambda item: (-item[1]["requests"], item[0]))
    return [{"name": name, **sums} for name, sums in ordered[:limit]]
