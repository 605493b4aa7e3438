"""Hourly (and daily) usage from the raw facts: samples of Envoy's counters and replica runs.

Requests and bytes: each sample of a replica run's port holds cumulative counters, so what it
adds is its difference from the sample before it in the same run (the first sample of a run
adds all of itself: Envoy starts counting at zero). What a sample adds belongs to the hour it
was taken in. A repeated sample is stored once (unique), a missing one only moves counts to the
next sample, and a counter lower than before (a reset that should not happen within one
process) starts again from zero rather than subtracting.

Replica time: each run counts from its start to its stop, or while it runs to the last time the
runtime saw it; a run found open after the platform itself was down was closed at its last
sighting (``provisioning.metering.close_lost``). Time is split at hour boundaries, exactly, in
milliseconds.

``rollup(start, end)`` recomputes every hour in the range whole and replaces its rows in one
transaction: idempotent, and safe to run again after late samples.
"""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from billing import traffic_sql, usage
from billing.models import ReplicaHour, RollupState, UsageDay, UsageHour
from provisioning.metering import ADDED_FIELDS, COUNTERS, added
from provisioning.models import ReplicaIncarnation, UsageSample

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _previous(incarnation_id, port: int, before_seq: int) -> UsageSample | None:
    return (
        UsageSample.objects.filter(incarnation_id=incarnation_id, port=port, seq__lt=before_seq)
        .order_by("-seq")
        .first()
    )


def traffic(
    start: datetime, end: datetime, width: timedelta = HOUR, tenant_id: int | None = None,
    gateway: str | None = None,
) -> dict[tuple, dict]:  # fmt: skip
    """(tenant id, gateway name, period start, port) → counters and latency buckets added in
    each period of ``width`` (aligned to the Unix epoch: hours and days are UTC's), optionally
    of one tenant's gateway: the sums of what each sample of the range adds, worked out when
    it was stored. PostgreSQL sums them (``billing.traffic_sql``); elsewhere (SQLite), Python."""
    if connection.vendor == "postgresql":
        return traffic_sql.traffic(start, end, width, tenant_id, gateway)
    return summed_in_python(start, end, width, tenant_id, gateway)


def summed_in_python(
    start: datetime, end: datetime, width: timedelta = HOUR, tenant_id: int | None = None,
    gateway: str | None = None,
) -> dict[tuple, dict]:  # fmt: skip
    """``traffic``'s sums, one sample at a time (the path on SQLite)."""
    samples = UsageSample.objects.filter(
        taken_at__gte=start, taken_at__lt=end, incarnation__tenant__isnull=False
    )
    if tenant_id is not None:
        samples = samples.filter(
            incarnation__tenant_id=tenant_id, incarnation__gateway_name=gateway
        )
    rows: dict[tuple, dict] = {}
    fields = ("incarnation__tenant_id", "incarnation__gateway_name", "taken_at", "port")
    for tenant, name, taken_at, port, *values in samples.values_list(*fields, *ADDED_FIELDS):
        key = (tenant, name, _period_of(taken_at, width), port)
        row = rows.setdefault(key, {"counters": dict.fromkeys(COUNTERS, 0), "latency": {}})
        for counter, value in zip(COUNTERS, values, strict=False):
            row["counters"][counter] += value
        for bound, count in values[-1].items():
            row["latency"][bound] = row["latency"].get(bound, 0) + count
    return rows


def _period_of(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // width) * width


def traffic_in_python(
    start: datetime, end: datetime, width: timedelta = HOUR, tenant_id: int | None = None,
    gateway: str | None = None,
) -> dict[tuple, dict]:  # fmt: skip
    """The reference: every sample of the range against the one before it, at rollup time
    (what ``traffic`` must always agree with, whatever order the samples arrived in)."""
    rows: dict[tuple, dict] = {}
    samples = UsageSample.objects.filter(taken_at__gte=start, taken_at__lt=end)
    if tenant_id is not None:
        samples = samples.filter(
            incarnation__tenant_id=tenant_id, incarnation__gateway_name=gateway
        )
    samples = samples.select_related("incarnation").order_by("incarnation_id", "port", "seq")
    last: dict[tuple, UsageSample | None] = {}
    for sample in samples.iterator(chunk_size=2000):
        run = sample.incarnation
        if run.tenant_id is None:
            continue  # the tenant is gone, and its usage with it
        stream = (sample.incarnation_id, sample.port)
        if stream not in last:
            last[stream] = _previous(sample.incarnation_id, sample.port, sample.seq)
        before = last[stream]
        counters, latency = added(
            {name: getattr(sample, name) for name in COUNTERS}, sample.latency,
            None if before is None else ({n: getattr(before, n) for n in COUNTERS}, before.latency),
        )  # fmt: skip
        last[stream] = sample
        key = (run.tenant_id, run.gateway_name, _period_of(sample.taken_at, width), sample.port)
        row = rows.setdefault(key, {"counters": dict.fromkeys(COUNTERS, 0), "latency": {}})
        for name, value in counters.items():
            row["counters"][name] += value
        for bound, count in latency.items():
            if count > 0:  # an empty bucket adds nothing
                row["latency"][bound] = row["latency"].get(bound, 0) + count
    return rows


def replica_time(start: datetime, end: datetime) -> dict[tuple, int]:
    """(tenant id, gateway name, hour, size) → milliseconds replicas ran in that hour."""
    found: dict[tuple, int] = defaultdict(int)
    runs = ReplicaIncarnation.objects.filter(
        Q(stopped_at__gt=start) | Q(stopped_at__isnull=True),
        started_at__lt=end,
        tenant__isnull=False,
    )
    for run in runs.iterator(chunk_size=2000):
        until = min(run.stopped_at or run.last_seen_at, end)
        moment = max(run.started_at, start)
        while moment < until:
            hour = hour_of(moment)
            slice_end = min(hour + HOUR, until)
            milliseconds = round((slice_end - moment).total_seconds() * 1000)
            found[(run.tenant_id, run.gateway_name, hour, run.size)] += milliseconds
            moment = slice_end
    return found


@transaction.atomic
def rollup(start: datetime, end: datetime, days: bool = True) -> tuple[int, int]:
    """Recomputes the hours from ``start``'s to the one before ``end`` (whole hours), and
    (unless ``days`` is false) the days holding them; the number of (usage, replica) hourly
    rows now there."""
    start = hour_of(start)
    end = hour_of(end) + (HOUR if end != hour_of(end) else timedelta(0))
    counted = traffic(start, end)
    replicas = replica_time(start, end)
    UsageHour.objects.filter(hour__gte=start, hour__lt=end).delete()
    ReplicaHour.objects.filter(hour__gte=start, hour__lt=end).delete()
    UsageHour.objects.bulk_create(
        UsageHour(
            tenant_id=tenant,
            gateway_name=gateway,
            hour=hour,
            port=port,
            latency=row["latency"],
            **row["counters"],
        )  # fmt: skip
        for (tenant, gateway, hour, port), row in sorted(counted.items(), key=_order)
    )
    ReplicaHour.objects.bulk_create(
        ReplicaHour(
            tenant_id=tenant, gateway_name=gateway, hour=hour, size=size, milliseconds=milliseconds
        )  # fmt: skip
        for (tenant, gateway, hour, size), milliseconds in sorted(replicas.items(), key=_order)
    )
    if days:
        roll_days(start, end)
    return len(counted), len(replicas)


@transaction.atomic
def roll_days(start: datetime, end: datetime) -> int:
    """Recomputes the daily rows (``UsageDay``) of the days from ``start``'s to the one holding
    the moment before ``end``, from their hourly rows; the number of daily rows now there."""
    first = usage.day_of(start)
    last = usage.day_of(end - timedelta(microseconds=1)) + usage.DAY
    found: dict[tuple, usage.Period] = {}

    def period(tenant_id, name: str, moment: datetime) -> usage.Period:
        key = (tenant_id, name, moment.astimezone(UTC))
        if key not in found:
            found[key] = usage.Period(name, key[2], dict.fromkeys(COUNTERS, 0), {})
        return found[key]

    usage.sum_hours(
        UsageHour.objects.filter(hour__gte=first, hour__lt=last),
        ReplicaHour.objects.filter(hour__gte=first, hour__lt=last),
        "day",
        period,
    )
    UsageDay.objects.filter(day__gte=first, day__lt=last).delete()
    UsageDay.objects.bulk_create(
        UsageDay(
            tenant_id=tenant_id,
            gateway_name=name,
            day=day,
            latency=row.latency,
            replica_milliseconds=row.milliseconds,
            **row.counters,
        )
        for (tenant_id, name, day), row in sorted(found.items(), key=_order)
    )
    return len(found)


def _order(item) -> tuple:
    return tuple(str(part) for part in item[0])


# A sample is written in a short transaction: one created this long before a run started may
# still be invisible to it, so the next run looks this far back for late arrivals.
COMMIT_SLACK = timedelta(minutes=10)


def rollup_recent(
    lookback: timedelta = timedelta(hours=2), now: datetime | None = None
) -> tuple[int, int]:
    """The periodic rollup: the hours recent samples and runs can still change, from the end
    of the previous run's (at the latest ``lookback`` ago); and the hours of samples stored
    since the previous run that arrived late for older hours. The first run starts from the
    oldest sample or run kept. ``now`` is the end of the hours rolled up (the current time)."""
    started = timezone.now()
    now = now or started
    state, _ = RollupState.objects.get_or_create(pk=1)
    start = now - lookback
    if state.rolled_until is None:
        oldest = [
            UsageSample.objects.aggregate(at=Min("taken_at"))["at"],
            ReplicaIncarnation.objects.aggregate(at=Min("started_at"))["at"],
        ]
        start = min([start, *(at for at in oldest if at is not None)])
    else:
        start = min(start, state.rolled_until - lookback)
    start = hour_of(start)
    late: set[datetime] = set()
    if state.samples_seen_until is not None:
        arrived = UsageSample.objects.filter(
            changed_at__gte=state.samples_seen_until - COMMIT_SLACK, taken_at__lt=start
        )
        late = {hour_of(at) for at in arrived.values_list("taken_at", flat=True)}
    traffic_rows, replica_rows = rollup(start, now + HOUR)
    for hour in sorted(late):
        rollup(hour, hour + HOUR, days=False)
    for day in sorted({usage.day_of(hour) for hour in late}):
        roll_days(day, day + usage.DAY)
    state.rolled_until, state.samples_seen_until = now, started
    state.save()
    return traffic_rows, replica_rows
