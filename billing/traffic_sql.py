"""``billing.rollups.traffic`` on PostgreSQL: what the samples of a range add, summed there.

Each sample carries what it adds to the sample before it (``UsageSample.added_*``, worked
out when it is stored), so a period's traffic is plain sums: one row back per gateway, period
and port, and one per latency bucket of those. Nothing before the range is read.
"""

from datetime import datetime, timedelta

from django.db import connection

from provisioning.metering import COUNTERS
from provisioning.models import ReplicaIncarnation, UsageSample

SAMPLES = UsageSample._meta.db_table
RUNS = ReplicaIncarnation._meta.db_table
PERIOD = "to_timestamp(floor(extract(epoch FROM s.taken_at) / %(width)s) * %(width)s)"


def _source(narrowed: bool, buckets: bool = False) -> str:
    narrow = "AND r.tenant_id = %(tenant)s AND r.gateway_name = %(gateway)s" if narrowed else ""
    each = "CROSS JOIN LATERAL jsonb_each_text(s.added_latency) AS bucket" if buckets else ""
    return f"""
        FROM {SAMPLES} s {each} JOIN {RUNS} r ON r.id = s.incarnation_id
        WHERE s.taken_at >= %(start)s AND s.taken_at < %(end)s
          AND r.tenant_id IS NOT NULL {narrow}
    """


def _counters_sql(narrowed: bool) -> str:
    sums = ", ".join(f"SUM(s.added_{name})" for name in COUNTERS)
    return f"""
        SELECT r.tenant_id, r.gateway_name, {PERIOD}, s.port, {sums}
        {_source(narrowed)}
        GROUP BY 1, 2, 3, 4
    """


def _latency_sql(narrowed: bool) -> str:
    return f"""
        SELECT r.tenant_id, r.gateway_name, {PERIOD}, s.port, bucket.key,
               SUM(bucket.value::bigint)
        {_source(narrowed, buckets=True)}
        GROUP BY 1, 2, 3, 4, 5
    """


def traffic(
    start: datetime, end: datetime, width: timedelta, tenant_id: int | None = None,
    gateway: str | None = None,
) -> dict[tuple, dict]:  # fmt: skip
    """(tenant id, gateway name, period start, port) → counters and latency buckets added."""
    narrowed = tenant_id is not None
    params = {
        "start": start, "end": end, "width": int(width.total_seconds()),
        "tenant": tenant_id, "gateway": gateway,
    }  # fmt: skip
    rows: dict[tuple, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(_counters_sql(narrowed), params)
        for tenant, name, period, port, *sums in cursor.fetchall():
            rows[(tenant, name, period, port)] = {
                "counters": {key: int(value) for key, value in zip(COUNTERS, sums, strict=True)},
                "latency": {},
            }
        cursor.execute(_latency_sql(narrowed), params)
        for tenant, name, period, port, bound, count in cursor.fetchall():
            rows[(tenant, name, period, port)]["latency"][bound] = int(count)
    return rows
