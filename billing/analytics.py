"""Traffic per gateway × route × consumer, minute by minute, from the access log entries.

The counters Envoy keeps (``provisioning.metering``) are exact and billed but know only the
gateway's listener port; each access log entry (``provisioning.AccessLogEntry``) knows its
route and consumer. Every entry is counted (nothing is sampled): requests, responses by status
class, bytes, and histograms of ``duration_ms`` (the gateway's time) and ``upstream_ms`` (the
backend's) in fixed buckets of two significant digits, so percentiles are interpolated by
``provisioning.metering.percentile`` like the counters' ones.

``rollup_minutes(start, end)`` recomputes the minutes in the range whole and replaces their
rows, then the hours holding them from their minutes, in one transaction (on PostgreSQL with
two ``INSERT … SELECT`` statements: nothing goes through Python): running it twice, or
again after a late entry, leaves the right rows. ``rollup_recent`` is the periodic run.
"""

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.db.models.functions import TruncMinute
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


def counts_in_python(start: datetime, end: datetime) -> dict[tuple, dict]:
    """(tenant id, gateway, route, consumer, minute) → the sums of the entries in [start, end),
    one entry at a time: the reference arithmetic, and the path on SQLite."""
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


KEYS = "tenant_id, gateway_name, route, consumer"


def _minutes_sql(cursor, start: datetime, end: datetime) -> int:
    """Writes the minute rows of [start, end) from the entries, summed by PostgreSQL."""
    source = AccessLogEntry._meta.db_table
    where = f"FROM {source} WHERE timestamp >= %(start)s AND timestamp < %(end)s"
    classes = ", ".join(
        f"count(*) FILTER (WHERE status >= {n}00 AND status < {n + 1}00)" for n in range(1, 6)
    )
    histograms = []
    for column in ("duration_ms", "upstream_ms"):
        histograms.append(
            f"SELECT {KEYS}, minute, jsonb_object_agg(lower::text, total) AS buckets FROM ("
            f"SELECT {KEYS}, date_trunc('minute', timestamp) AS minute,"
            f" {_BUCKET_SQL.format(c=column)} AS lower, count(*) AS total {where}"
            f" AND {column} IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6) AS b GROUP BY 1, 2, 3, 4, 5"
        )
    cursor.execute(
        f"""
        WITH sums AS (
            SELECT {KEYS}, date_trunc('minute', timestamp) AS minute, count(*) AS requests,
                {classes}, coalesce(sum(bytes_received), 0), coalesce(sum(bytes_sent), 0)
            {where} GROUP BY 1, 2, 3, 4, 5
        ), latency AS ({histograms[0]}), upstream AS ({histograms[1]})
        INSERT INTO {AnalyticsMinute._meta.db_table} ({KEYS}, start, {", ".join(SUMS)},
            latency, upstream_latency)
        SELECT sums.*, coalesce(latency.buckets, '{{}}'), coalesce(upstream.buckets, '{{}}')
        FROM sums LEFT JOIN latency USING ({KEYS}, minute)
            LEFT JOIN upstream USING ({KEYS}, minute)
        """,
        {"start": start, "end": end},
    )  # fmt: skip
    return cursor.rowcount


def _hours_sql(cursor, first: datetime, last: datetime) -> int:
    """Writes the hour rows of [first, last) from their minute rows, summed by PostgreSQL."""
    minutes = AnalyticsMinute._meta.db_table
    where = f"FROM {minutes} WHERE start >= %(first)s AND start < %(last)s"
    histograms = [
        f"SELECT {KEYS}, hour, jsonb_object_agg(key, total) AS buckets FROM ("
        f"SELECT {KEYS}, date_trunc('hour', start) AS hour, e.key, sum(e.value::bigint) AS total"
        f" FROM {minutes}, jsonb_each_text({column}) AS e"
        f" WHERE start >= %(first)s AND start < %(last)s"
        f" GROUP BY 1, 2, 3, 4, 5, 6) AS b GROUP BY 1, 2, 3, 4, 5"
        for column in ("latency", "upstream_latency")
    ]
    cursor.execute(
        f"""
        WITH sums AS (
            SELECT {KEYS}, date_trunc('hour', start) AS hour,
                {", ".join(f"sum({name})" for name in SUMS)}
            {where} GROUP BY 1, 2, 3, 4, 5
        ), latency AS ({histograms[0]}), upstream AS ({histograms[1]})
        INSERT INTO {AnalyticsHour._meta.db_table} ({KEYS}, start, {", ".join(SUMS)},
            latency, upstream_latency)
        SELECT sums.*, coalesce(latency.buckets, '{{}}'), coalesce(upstream.buckets, '{{}}')
        FROM sums LEFT JOIN latency USING ({KEYS}, hour) LEFT JOIN upstream USING ({KEYS}, hour)
        """,
        {"first": first, "last": last},
    )  # fmt: skip
    return cursor.rowcount


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
    first, last = floor(start, HOUR), floor(end - MINUTE, HOUR) + HOUR
    AnalyticsMinute.objects.filter(start__gte=start, start__lt=end).delete()
    AnalyticsHour.objects.filter(start__gte=first, start__lt=last).delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            return _minutes_sql(cursor, start, end), _hours_sql(cursor, first, last)
    found = counts_in_python(start, end)
    AnalyticsMinute.objects.bulk_create(
        (AnalyticsMinute(tenant_id=key[0], gateway_name=key[1], route=key[2], consumer=key[3],
                         start=key[4], **row) for key, row in found.items()),
        batch_size=2000,
    )  # fmt: skip
    hours: dict[tuple, dict] = defaultdict(_empty)
    for minute in AnalyticsMinute.objects.filter(start__gte=first, start__lt=last).iterator():
        key = (minute.tenant_id, minute.gateway_name, minute.route, minute.consumer,
               floor(minute.start, HOUR))  # fmt: skip
        merge(hours[key], minute)
    AnalyticsHour.objects.bulk_create(
        (AnalyticsHour(tenant_id=key[0], gateway_name=key[1], route=key[2], consumer=key[3],
                       start=key[4], **row) for key, row in hours.items()),
        batch_size=2000,
    )  # fmt: skip
    return len(found), len(hours)


@transaction.atomic
def rollup_recent(now: datetime | None = None) -> tuple[int, int]:
    """The periodic rollup: the minutes from the previous run's end (at most the minute
    retention back; the first run starts at the oldest entry within it, less ``LOOKBACK``) to
    now, and the minutes of entries stored since the previous run with older timestamps (per
    hour, the span from its first such minute to its last: one recomputation per hour)."""
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
    minutes = late.annotate(minute=TruncMinute("timestamp")).values_list("minute", flat=True)
    spans: dict[datetime, list[datetime]] = {}  # per hour: its first and last late minute
    for minute in minutes.distinct():
        span = spans.setdefault(floor(minute, HOUR), [minute, minute])
        span[0], span[1] = min(span[0], minute), max(span[1], minute)
    written = rollup_minutes(start, now)
    for first, last in spans.values():
        rollup_minutes(first, last + MINUTE)
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
