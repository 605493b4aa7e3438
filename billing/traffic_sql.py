"""``billing.rollups.traffic`` in one pass of PostgreSQL: the same arithmetic, set-wise.

Python reads every sample of the range (720,000 an hour for 1,000 gateways of 2 replicas read
every 10 s); PostgreSQL computes each sample's difference from the one before it in its run
with a window (``LAG`` over the run's port, by sequence), sums them per period, and sends back
one row per gateway, period and port, and one per latency bucket of those.

The rules are those of the Python version, which stays the reference (and the path on
SQLite); ``tests/billing/test_rollups.py`` checks that both agree on random histories:
- a sample adds its difference from the sample before it in the same run and port (the one
  with the next lower sequence number, even from before the range); the first of a run adds
  all of itself;
- any counter lower than before: the sample adds all of itself (a reset), latency included;
- latency: per bucket, the difference; any bucket lower than before (or gone) is a reset of
  the histogram alone: the sample adds all of its buckets; only positive additions count;
- a run whose tenant is gone adds nothing.
"""

from datetime import datetime, timedelta

from django.db import connection

from provisioning.metering import COUNTERS
from provisioning.models import ReplicaIncarnation, UsageSample

SAMPLES = UsageSample._meta.db_table
RUNS = ReplicaIncarnation._meta.db_table


def _query(narrowed: bool) -> str:
    columns = ", ".join(COUNTERS)
    previous = ", ".join(f"LAG({name}) OVER run AS before_{name}" for name in COUNTERS)
    lower = " OR ".join(f"{name} < before_{name}" for name in COUNTERS)
    narrow = "AND r.tenant_id = %(tenant)s AND r.gateway_name = %(gateway)s" if narrowed else ""
    return f"""
        WITH in_range AS (
            SELECT s.incarnation_id, s.port, s.seq, s.taken_at, s.latency, {columns}
            FROM {SAMPLES} s JOIN {RUNS} r ON r.id = s.incarnation_id
            WHERE s.taken_at >= %(start)s AND s.taken_at < %(end)s
              AND r.tenant_id IS NOT NULL {narrow}
        ),
        firsts AS (
            SELECT incarnation_id, port, MIN(seq) AS seq FROM in_range GROUP BY 1, 2
        ),
        before_range AS (
            SELECT DISTINCT ON (s.incarnation_id, s.port)
                   s.incarnation_id, s.port, s.seq, s.taken_at, s.latency, {columns}
            FROM {SAMPLES} s JOIN firsts f
              ON f.incarnation_id = s.incarnation_id AND f.port = s.port AND s.seq < f.seq
            ORDER BY s.incarnation_id, s.port, s.seq DESC
        ),
        chained AS (
            SELECT *, {previous}, LAG(latency) OVER run AS before_latency,
                   LAG(seq) OVER run IS NULL AS first_of_run
            FROM (
                SELECT *, TRUE AS counted FROM in_range
                UNION ALL
                SELECT *, FALSE AS counted FROM before_range
            ) samples
            WINDOW run AS (PARTITION BY incarnation_id, port ORDER BY seq)
        ),
        added AS (
            SELECT c.*, r.tenant_id, r.gateway_name,
                   to_timestamp(floor(extract(epoch FROM c.taken_at) / %(width)s) * %(width)s)
                       AS period,
                   (c.first_of_run OR {lower}) AS reset
            FROM chained c JOIN {RUNS} r ON r.id = c.incarnation_id
            WHERE c.counted
        )
    """


def _counters_sql(narrowed: bool) -> str:
    sums = ", ".join(
        f"SUM(CASE WHEN reset THEN {name} ELSE {name} - before_{name} END)" for name in COUNTERS
    )
    return (
        _query(narrowed)
        + f"""
        SELECT tenant_id, gateway_name, period, port, {sums}
        FROM added GROUP BY 1, 2, 3, 4
    """
    )


def _latency_sql(narrowed: bool) -> str:
    return (
        _query(narrowed)
        + """
        , histogram AS (
            SELECT a.*, (a.reset OR EXISTS (
                SELECT 1 FROM jsonb_each_text(a.before_latency) was
                WHERE COALESCE((a.latency ->> was.key)::bigint, 0) < was.value::bigint
            )) AS fresh
            FROM added a
        ),
        buckets AS (
            SELECT h.tenant_id, h.gateway_name, h.period, h.port, now.key AS bound,
                   CASE WHEN h.fresh THEN now.value::bigint
                        ELSE now.value::bigint
                             - COALESCE((h.before_latency ->> now.key)::bigint, 0)
                   END AS count
            FROM histogram h, jsonb_each_text(h.latency) now
        )
        SELECT tenant_id, gateway_name, period, port, bound, SUM(count)
        FROM buckets WHERE count > 0 GROUP BY 1, 2, 3, 4, 5
    """
    )


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
