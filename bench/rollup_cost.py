"""What the usage rollup costs at scale: 1,000 gateways × 2 replicas, samples every 10 s.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/rollup_cost.py
    ... bench/rollup_cost.py --gateways 1000 --replicas 2 --interval 10 --hours 2

Fills a throwaway PostgreSQL database (``test_<name>``, as the tests do) with ``--hours`` hours
of samples (every replica, every ``--interval`` seconds, one listener port, cumulative
counters and a latency histogram as Envoy reports them) and a month of replica runs (every
replica restarted once a day), then times, each ``--runs`` times:

- ``rollup(one hour)``: what closing an hour costs;
- ``rollup_recent()``: what beat runs every ``GANTRY_USAGE_ROLLUP_SECONDS`` (the last two hours
  and the current one);
- ``replica_time(a month)``: the replica-hours of every run of the month;
- ``roll_days(one day)``: the daily rows of a day whose 24 hours are all there (what the
  rollup adds whenever an hour of that day changes);
- ``rollup(a month)`` as a month's close recomputes it, extrapolated from the hour (samples are
  pruned after the retention window, so a month is 720 of those hours).

Prints medians and the extrapolation; the figures are in docs/usage.md.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
)
from django.utils import timezone  # noqa: E402

from billing import rollups  # noqa: E402
from billing.models import ReplicaHour, UsageHour  # noqa: E402
from gateways.models import Gateway  # noqa: E402
from provisioning.metering import COUNTERS, added  # noqa: E402
from provisioning.models import ReplicaIncarnation, UsageSample  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tenants.audit import Actor  # noqa: E402
from tenants.default_plans import DEFAULT_PLANS  # noqa: E402
from tenants.models import Plan  # noqa: E402

SYSTEM = Actor.system("bench")
TENANTS = 100
BUCKETS = ("0.5", "1", "2.5", "5", "10", "25", "50", "100")


def populate(gateways: int, replicas: int, interval: int, hours: int) -> tuple[datetime, int]:
    for fields in DEFAULT_PLANS:
        Plan.objects.get_or_create(name=fields["name"], defaults=fields)
    users = get_user_model()
    tenants = []
    for index in range(TENANTS):
        owner = users.objects.create_user(f"owner-{index}", password="x")
        tenants.append(tenant_services.create_tenant(SYSTEM, f"t{index:03d}", owner.username))
    Gateway.objects.bulk_create(
        Gateway(tenant=tenants[index % TENANTS], name=f"gw-{index:04d}", spec={"replicas": 2})
        for index in range(gateways)
    )
    now = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours)
    month = now - timedelta(days=30)
    runs, current = [], []
    for gateway in Gateway.objects.select_related("tenant"):
        for replica in range(replicas):
            for day in range(30):  # restarted once a day: 30 runs each
                began = month + timedelta(days=day, minutes=replica)
                last = day == 29
                run = ReplicaIncarnation(
                    id=uuid.uuid4(), tenant=gateway.tenant, gateway=gateway,
                    tenant_slug=gateway.tenant.slug, gateway_name=gateway.name,
                    node_id=f"{gateway.tenant.slug}/{gateway.name}/{replica}", size="small",
                    started_at=began, last_seen_at=now if last else began + timedelta(days=1),
                    stopped_at=None if last else began + timedelta(days=1),
                    stop_reason="" if last else "exited", location="/bench",
                )  # fmt: skip
                runs.append(run)
                if last:
                    current.append(run)
    ReplicaIncarnation.objects.bulk_create(runs, batch_size=5000)
    steps = hours * 3600 // interval
    batch: list[UsageSample] = []
    count = 0
    for run in current:
        before = None
        for step in range(steps):
            served = 30 * (step + 1)
            values = dict.fromkeys(COUNTERS, 0)
            values.update(responses_2xx=served - step // 10, responses_5xx=step // 10,
                          bytes_received=400 * served, bytes_sent=2000 * served)  # fmt: skip
            latency = {bound: (index + 1) * (step + 1) for index, bound in enumerate(BUCKETS)}
            counters, buckets = added(values, latency, before)  # as record_sample stores it
            before = (values, latency)
            batch.append(UsageSample(
                incarnation_id=run.id, seq=step, port=80,
                taken_at=start + timedelta(seconds=interval * step + 5), latency=latency,
                added_latency=buckets, **values,
                **{f"added_{name}": value for name, value in counters.items()},
            ))  # fmt: skip
            if len(batch) >= 20_000:
                UsageSample.objects.bulk_create(batch)
                count += len(batch)
                batch.clear()
    UsageSample.objects.bulk_create(batch)
    return start, count + len(batch)


def full_day(day: datetime) -> datetime:
    """Hourly rows for every gateway and hour of ``day`` (what ``roll_days`` sums)."""
    tenant_gateways = list(
        UsageHour.objects.filter(hour__gte=day + timedelta(days=2)).values_list(
            "tenant_id", "gateway_name"
        ).distinct()
    )  # fmt: skip
    hours = [day + timedelta(hours=h) for h in range(24)]
    for model in (UsageHour, ReplicaHour):  # the month's replica rows may hold some already
        model.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1)).delete()
    UsageHour.objects.bulk_create(
        (UsageHour(tenant_id=tenant, gateway_name=name, hour=hour, port=80, responses_2xx=900,
                   responses_5xx=4, bytes_sent=10**6, latency={"1": 500, "5": 400, "50": 4})
         for tenant, name in tenant_gateways for hour in hours),
        batch_size=5000,
    )  # fmt: skip
    ReplicaHour.objects.bulk_create(
        (ReplicaHour(tenant_id=tenant, gateway_name=name, hour=hour, size="small",
                     milliseconds=7_200_000) for tenant, name in tenant_gateways for hour in hours),
        batch_size=5000,
    )  # fmt: skip
    return day


def timed(function, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--interval", type=int, default=10, help="seconds between samples")
    parser.add_argument("--hours", type=int, default=2, help="hours of samples")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        began = time.perf_counter()
        start, samples = populate(args.gateways, args.replicas, args.interval, args.hours)
        runs = ReplicaIncarnation.objects.count()
        print(f"{args.gateways} gateways × {args.replicas} replicas, a sample every "
              f"{args.interval} s: {samples:,} samples over {args.hours} h, {runs:,} replica "
              f"runs over 30 days (filled in {time.perf_counter() - began:.0f} s)")  # fmt: skip
        hour = timed(lambda: rollups.rollup(start, start + timedelta(hours=1)), args.runs)
        recent = timed(rollups.rollup_recent, args.runs)
        month_start = start.replace(hour=0) - timedelta(days=29)
        replicas = timed(lambda: rollups.replica_time(month_start, start), args.runs)
        rows = UsageHour.objects.filter(hour=start).count()
        day = full_day(start.replace(hour=0) - timedelta(days=2))
        days = timed(lambda: rollups.roll_days(day, day + timedelta(days=1)), args.runs)
        print(f"{'what':44} {'median s':>9} {'max s':>8}")
        for name, times in (
            (f"rollup(one hour): {rows:,} usage rows", hour),
            ("rollup_recent() (beat, every minute)", recent),
            ("replica_time(30 days of runs)", replicas),
            ("roll_days(one day: 24 hourly rows a gateway)", days),
        ):
            print(f"{name:44} {statistics.median(times):9.2f} {max(times):8.2f}")
        per_hour = statistics.median(hour)
        print(f"a month's close, extrapolated: 720 × {per_hour:.2f} s = "
              f"{720 * per_hour / 60:.1f} min; samples per second of rollup: "
              f"{samples / args.hours / per_hour:,.0f}")  # fmt: skip
    finally:
        teardown_databases(databases, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
